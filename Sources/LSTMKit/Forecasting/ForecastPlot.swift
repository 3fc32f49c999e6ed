import Foundation

/// History, forecast and interval band of each series as one standalone SVG (one panel per series, at most 8).
public enum ForecastPlot {
    /// The page: one panel per series (history, median forecast, the band between the outer quantiles).
    /// - Parameters:
    ///   - history: the series as read.
    ///   - forecasts: their forecasts, in the same order.
    ///   - format: how the time axis labels are written.
    ///   - title: the heading above the panels.
    /// - Returns: a standalone SVG document.
    public static func svg(history: [TimeSeries], forecasts: [Forecast], format: TimeFormat, title: String) -> String {
        let panels = Array(zip(history, forecasts).prefix(8))
        let width = 760.0, panelHeight = 260.0, left = 70.0, right = 20.0, top = 44.0, gap = 40.0
        let height = top + Double(panels.count) * (panelHeight + gap)
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(Int(width / 2))" y="22" text-anchor="middle" font-size="15">\(xmlEscaped(title))</text>

        """
        for (p, (series, forecast)) in panels.enumerated() {
            let y0 = top + Double(p) * (panelHeight + gap)
            let shown = min(series.values.count, max(3 * forecast.times.count, 48))
            let past = Array(series.values.suffix(shown)), pastTimes = Array(series.times.suffix(shown))
            let lowest = forecast.values.first ?? [], highest = forecast.values.last ?? [], median = forecast.median
            let all = past + lowest + highest + median
            guard var low = all.min(), var high = all.max() else { continue }
            if high - low < 1e-12 { high += 1; low -= 1 }
            let pad = 0.06 * (high - low)
            low -= pad
            high += pad
            let n = Double(past.count + forecast.times.count - 1)
            let x = { (k: Int) in left + (width - left - right) * Double(k) / max(n, 1) }
            let y = { (v: Double) in y0 + panelHeight * (1 - (v - low) / (high - low)) }
            svg += "<text x=\"\(left)\" y=\"\(f(y0 - 8))\" font-size=\"13\">\(xmlEscaped(series.name))</text>\n"
            svg += "<rect x=\"\(left)\" y=\"\(f(y0))\" width=\"\(f(width - left - right))\" height=\"\(f(panelHeight))\" fill=\"none\" stroke=\"#888\"/>\n"
            for k in 0...4 {
                let v = low + (high - low) * Double(k) / 4
                svg += "<line x1=\"\(left)\" x2=\"\(f(width - right))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\" stroke=\"#eee\"/>"
                svg += "<text x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\">\(String(format: "%.4g", v))</text>\n"
            }
            let times = pastTimes + forecast.times
            for k in stride(from: 0, to: times.count, by: max(1, times.count / 5)) {
                svg += "<text x=\"\(f(x(k)))\" y=\"\(f(y0 + panelHeight + 16))\" text-anchor=\"middle\">\(TimeStamps.format(times[k], as: format))</text>\n"
            }
            let start = past.count - 1
            // The band from the lowest to the highest quantile, joined to the last observed point.
            if forecast.quantiles.count > 1 {
                let upper = [(start, past.last!)] + highest.enumerated().map { (start + 1 + $0.offset, $0.element) }
                let lower = [(start, past.last!)] + lowest.enumerated().map { (start + 1 + $0.offset, $0.element) }
                let points = (upper + lower.reversed()).map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " ")
                svg += "<polygon points=\"\(points)\" fill=\"#d62728\" fill-opacity=\"0.18\" stroke=\"none\"/>\n"
            }
            let history = past.enumerated().map { "\(f(x($0.offset))),\(f(y($0.element)))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.6\" points=\"\(history)\"/>\n"
            let line = ([(start, past.last!)] + median.enumerated().map { (start + 1 + $0.offset, $0.element) })
                .map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.8\" points=\"\(line)\"/>\n"
            if p == 0 {
                let q = forecast.quantiles
                svg += "<rect x=\"\(f(left + 10))\" y=\"\(f(y0 + 8))\" width=\"250\" height=\"56\" fill=\"white\" stroke=\"#ccc\"/>\n"
                svg += "<line x1=\"\(f(left + 20))\" x2=\"\(f(left + 44))\" y1=\"\(f(y0 + 22))\" y2=\"\(f(y0 + 22))\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"\(f(left + 50))\" y=\"\(f(y0 + 26))\">history</text>\n"
                svg += "<line x1=\"\(f(left + 20))\" x2=\"\(f(left + 44))\" y1=\"\(f(y0 + 38))\" y2=\"\(f(y0 + 38))\" stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"\(f(left + 50))\" y=\"\(f(y0 + 42))\">forecast (median)</text>\n"
                svg += "<rect x=\"\(f(left + 20))\" y=\"\(f(y0 + 48))\" width=\"24\" height=\"10\" fill=\"#d62728\" fill-opacity=\"0.18\"/><text x=\"\(f(left + 50))\" y=\"\(f(y0 + 57))\">\(q.first.map { "\($0)" } ?? "")–\(q.last.map { "\($0)" } ?? "") quantile band</text>\n"
            }
        }
        return svg + "</svg>\n"
    }
}
