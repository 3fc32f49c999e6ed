import Foundation

// The trace as people read it: text for a terminal, one HTML page with the network drawn. `lstm trace` prints
// these; `--format json` is the `Codable` value itself.
extension LSTMTrace {
    static func vector(_ v: [Double], _ digits: Int = 5) -> String {
        "[" + v.map { String(format: "%.\(digits)g", $0) }.joined(separator: ", ") + "]"
    }

    static func short(_ v: [Double]) -> String { "[" + v.map { String(format: "%.3f", $0) }.joined(separator: ", ") + "]" }

    /// Every number as plain text: forward per step, backward from the last step down, the totals beside their
    /// central differences (`lstm trace`).
    public func text(seed: UInt64) -> String {
        let trace = self
        let T = trace.forward.count, H = trace.h0.count, I = trace.inputs[0].count
        let act = trace.activations
        let σ = act.gate == "sigmoid" ? "σ" : "id", tanh = act.cell == "tanh" ? "tanh" : "id"
        var out = "LSTM trace: I = \(I), H = \(H), T = \(T), seed \(seed); gates \(act.gate), cell \(act.cell)\n"
        out += "loss L = ½ Σ_t Σ_j (h_t,j − y_t,j)² = \(String(format: "%.10g", trace.loss))\n\n"
        out += "W = [W_ih | W_hh] (\(4 * H) × \(I + H)), rows i, f, g, o; b = b_ih + b_hh\n"
        for (r, row) in trace.weights.W.enumerated() {
            out += "  \(["i", "f", "g", "o"][r / H])\(r % H)  \(Self.vector(row))   b \(String(format: "%.5g", trace.weights.b[r]))\n"
        }
        out += "h0 = \(Self.vector(trace.h0))   c0 = \(Self.vector(trace.c0))\n\n"
        out += "forward\n"
        for (t, s) in trace.forward.enumerated() {
            out += "t = \(t + 1)  x = \(Self.vector(s.x))   h_{t−1} = \(Self.vector(s.h_prev))   y = \(Self.vector(trace.targets[t]))\n"
            out += "       I = [x, h_{t−1}] = \(Self.vector(s.I))\n"
            out += "       Z = W·I + b = \(Self.vector(s.Z))\n"
            out += "       i = \(σ)(z_i) = \(Self.vector(s.i))   f = \(σ)(z_f) = \(Self.vector(s.f))\n"
            out += "       g = \(tanh)(z_g) = \(Self.vector(s.g))   o = \(σ)(z_o) = \(Self.vector(s.o))\n"
            out += "       S = f⊙S_{t−1} + i⊙g = \(Self.vector(s.S))   h = o⊙\(tanh)(S) = \(Self.vector(s.h))\n"
        }
        out += "\nbackward (from t = \(T) down to 1)\n"
        for t in stride(from: T - 1, through: 0, by: -1) {
            let d = trace.backward[t]
            out += "t = \(t + 1)  δh = (h − y) + from step t+1 = \(Self.vector(d.dh))\n"
            out += "       δS through h_t = δh⊙o⊙\(tanh)'(S) = \(Self.vector(d.dS_from_h))\n"
            out += "       δS through S_{t+1} = δS_{t+1}⊙f_{t+1} = \(Self.vector(d.dS_from_next))\n"
            out += "       δS = \(Self.vector(d.dS))\n"
            out += "       δi = δS⊙g = \(Self.vector(d.di))   δf = δS⊙S_{t−1} = \(Self.vector(d.df))\n"
            out += "       δg = δS⊙i = \(Self.vector(d.dg))   δo = δh⊙\(tanh)(S) = \(Self.vector(d.do))\n"
            out += "       δZ = \(Self.vector(d.dZ))\n"
            out += "       δI = Wᵀ·δZ = \(Self.vector(d.dI))  →  δx = \(Self.vector(d.dx)), δh_{t−1} = \(Self.vector(d.dh_prev))\n"
            out += "       δW_t = δZ·Iᵀ: " + d.dW.map { Self.vector($0, 4) }.joined(separator: " ") + "\n"
        }
        out += "\ntotals: analytic (sum over steps) beside the fourth-order central difference (ε = \(trace.numerical.epsilon))\n"
        out += "  " + "".padding(toLength: 12, withPad: " ", startingAt: 0) + "analytic         central diff.    |difference|\n"
        for (name, a, n) in trace.comparisons {
            out += "  " + name.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: "%+.10f   %+.10f   %.1e\n", a, n, abs(a - n))
        }
        out += String(format: "largest |difference| %.2e\n", trace.numerical.max_abs_difference)
        return out
    }



    /// One self-contained page (styles inline, no script or network): the network unrolled as SVG, each node
    /// labelled with its value, the two paths into each S_t drawn apart, a table per step and the check table
    /// (`lstm trace --format html`).
    public func html(seed: UInt64) -> String {
        let trace = self
        let T = trace.forward.count, H = trace.h0.count, I = trace.inputs[0].count
        var html = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>LSTM trace: I = \(I), H = \(H), T = \(T)</title>
        <style>
        body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
        h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; } h3 { font-size: 15px; margin: 16px 0 6px; }
        table { border-collapse: collapse; font-size: 13px; margin-bottom: 8px; }
        td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-family: Menlo, Consolas, monospace; }
        th { background: #f3f3f3; font-family: inherit; }
        .eq { font-family: Menlo, Consolas, monospace; background: #f7f7f7; padding: 10px; white-space: pre; font-size: 13px; }
        .ok { color: #1a7f37; } .key span { display: inline-block; margin-right: 18px; }
        svg text { font-family: Menlo, Consolas, monospace; }
        </style></head><body>
        <h1>LSTM trace: I = \(I), H = \(H), T = \(T), seed \(seed)</h1>
        <p>Gates: \(trace.activations.gate), cell: \(trace.activations.cell). Loss L = ½ Σ<sub>t</sub> Σ<sub>j</sub> (h<sub>t,j</sub> − y<sub>t,j</sub>)² = \(String(format: "%.10g", trace.loss)). Gate order i, f, g, o; I<sub>t</sub> = [x<sub>t</sub>, h<sub>t−1</sub>]; W = [W<sub>ih</sub> | W<sub>hh</sub>].</p>
        <div class="eq">Z_t = W·I_t + b     i, f, g, o = act(Z_t)     S_t = f ⊙ S_{t−1} + i ⊙ g     h_t = o ⊙ tanh(S_t)
        δS_t = δh_t ⊙ o ⊙ (1 − tanh² S_t)   +   δS_{t+1} ⊙ f_{t+1}        (through h_t, and through S_{t+1})
        δZ_t = [δi ⊙ i(1−i), δf ⊙ f(1−f), δg ⊙ (1−g²), δo ⊙ o(1−o)]     δI_t = Wᵀ·δZ_t = [δx_t, δh_{t−1}]     δW = Σ_t δZ_t·I_tᵀ</div>

        """
        html += "<h2>The network unrolled</h2>\n" + svg()
        html += """
        <p class="key"><span style="color:#1f77b4">━ forward</span><span style="color:#d62728">╌ δS through h<sub>t</sub>: δh⊙o⊙(1−tanh²S)</span><span style="color:#ff7f0e">╌ δS through S<sub>t+1</sub>: δS<sub>t+1</sub>⊙f<sub>t+1</sub></span></p>

        """
        html += "<h2>Every step</h2>\n"
        for t in 0..<T {
            let s = trace.forward[t], d = trace.backward[t]
            html += "<h3>t = \(t + 1)</h3>\n<table><tr><th>forward</th><th>value</th><th>backward</th><th>value</th></tr>\n"
            let left: [(String, [Double])] = [("x", s.x), ("h<sub>t−1</sub>", s.h_prev), ("I = [x, h<sub>t−1</sub>]", s.I),
                                              ("Z = W·I + b", s.Z), ("i", s.i), ("f", s.f), ("g", s.g), ("o", s.o),
                                              ("S", s.S), ("h", s.h), ("y (target)", trace.targets[t])]
            let right: [(String, [Double])] = [("δh", d.dh), ("δS through h<sub>t</sub>", d.dS_from_h),
                                               ("δS through S<sub>t+1</sub>", d.dS_from_next), ("δS", d.dS), ("δi", d.di),
                                               ("δf", d.df), ("δg", d.dg), ("δo", d.do), ("δZ", d.dZ), ("δx", d.dx),
                                               ("δh<sub>t−1</sub>", d.dh_prev)]
            for k in 0..<max(left.count, right.count) {
                let l = k < left.count ? "<td>\(left[k].0)</td><td>\(Self.short(left[k].1))</td>" : "<td></td><td></td>"
                let r = k < right.count ? "<td>\(right[k].0)</td><td>\(Self.short(right[k].1))</td>" : "<td></td><td></td>"
                html += "<tr>\(l)\(r)</tr>\n"
            }
            html += "</table>\n<table><tr><th>δW<sub>t</sub> = δZ·Iᵀ</th>" + (0..<(I + H)).map { "<th>\($0 < I ? "x" : "h")\($0 < I ? $0 : $0 - I)</th>" }.joined() + "</tr>\n"
            for (r, row) in d.dW.enumerated() {
                html += "<tr><td>\(["i", "f", "g", "o"][r / H])\(r % H)</td>" + row.map { String(format: "<td>%.4f</td>", $0) }.joined() + "</tr>\n"
            }
            html += "</table>\n"
        }
        html += "<h2>Totals against central differences</h2>\n<p>Fourth-order central difference of the loss, ε = \(trace.numerical.epsilon). Largest |difference|: <b class=\"ok\">\(String(format: "%.2e", trace.numerical.max_abs_difference))</b>.</p>\n"
        html += "<table><tr><th>gradient</th><th>analytic (Σ over steps)</th><th>central difference</th><th>|difference|</th></tr>\n"
        for (name, a, n) in trace.comparisons {
            html += "<tr><td>\(name)</td>" + String(format: "<td>%+.10f</td><td>%+.10f</td><td>%.1e</td></tr>\n", a, n, abs(a - n))
        }
        html += "</table>\n<p>Made by <code>lstm trace --format html</code>; <code>--format json</code> holds the same numbers at full precision.</p>\n</body></html>\n"
        return html
    }

    /// Per step a column: x_t and h_{t−1} → I_t → Z_t → i, f, g, o → S_t → h_t, with S and h carried right.
    func svg() -> String {
        let trace = self
        let T = trace.forward.count
        let column = 330.0, left = 90.0, width = left + column * Double(T) + 40
        let rows: [(String, Double)] = [("h", 50), ("S", 150), ("gates", 250), ("Z", 340), ("I", 420), ("x", 500)]
        let height = 560.0
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-size=\"11\">\n"
        s += "<defs><marker id=\"a\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#1f77b4\"/></marker>"
        s += "<marker id=\"r\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#d62728\"/></marker>"
        s += "<marker id=\"o\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#ff7f0e\"/></marker></defs>\n"
        for (name, y) in rows {
            s += "<text x=\"8\" y=\"\(y + 4)\" fill=\"#555\" font-size=\"12\">\(name == "gates" ? "i f g o" : name + "_t")</text>\n"
        }
        func box(_ cx: Double, _ cy: Double, _ w: Double, _ lines: [String], fill: String) -> String {
            let h = 14.0 * Double(lines.count) + 8
            var out = "<rect x=\"\(cx - w / 2)\" y=\"\(cy - h / 2)\" width=\"\(w)\" height=\"\(h)\" rx=\"5\" fill=\"\(fill)\" stroke=\"#888\"/>"
            for (k, line) in lines.enumerated() {
                out += "<text x=\"\(cx)\" y=\"\(cy - h / 2 + 16 + 14 * Double(k))\" text-anchor=\"middle\">\(xmlEscaped(line))</text>"
            }
            return out + "\n"
        }
        func arrow(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, _ colour: String, _ marker: String, dashed: Bool = false) -> String {
            "<line x1=\"\(x1)\" y1=\"\(y1)\" x2=\"\(x2)\" y2=\"\(y2)\" stroke=\"\(colour)\" stroke-width=\"1.6\"\(dashed ? " stroke-dasharray=\"5,3\"" : "") marker-end=\"url(#\(marker))\"/>\n"
        }
        for t in 0..<T {
            let f = trace.forward[t], d = trace.backward[t]
            let cx = left + column * (Double(t) + 0.5)
            s += "<text x=\"\(cx)\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">t = \(t + 1)</text>\n"
            // Forward arrows, bottom to top.
            s += arrow(cx, 485, cx, 440, "#1f77b4", "a")
            s += arrow(cx, 402, cx, 362, "#1f77b4", "a")
            s += arrow(cx, 322, cx, 282, "#1f77b4", "a")
            s += arrow(cx, 218, cx, 172, "#1f77b4", "a")
            s += arrow(cx, 128, cx, 72, "#1f77b4", "a")
            // The carries to the next step: S_t → S_{t+1} and h_t → I_{t+1}.
            if t + 1 < T {
                s += arrow(cx + 120, 150, cx + column - 120, 150, "#1f77b4", "a")
                s += "<path d=\"M\(cx + 120),50 C\(cx + 200),50 \(cx + column - 200),420 \(cx + column - 125),420\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.2\" stroke-opacity=\"0.5\" marker-end=\"url(#a)\"/>\n"
                // δS through S_{t+1} (orange), drawn back from step t+1 to S_t.
                // What S_t receives from S_{t+1}: δS_{t+1} ⊙ f_{t+1}.
                s += arrow(cx + column - 120, 166, cx + 120, 166, "#ff7f0e", "o", dashed: true)
                s += "<text x=\"\(cx + column / 2)\" y=\"184\" text-anchor=\"middle\" fill=\"#ff7f0e\">δS·f = \(xmlEscaped(Self.short(d.dS_from_next)))</text>\n"
            }
            // δS through h_t (red), from h_t down to S_t.
            s += arrow(cx + 40, 72, cx + 40, 128, "#d62728", "r", dashed: true)
            s += "<text x=\"\(cx + 46)\" y=\"102\" fill=\"#d62728\">\(xmlEscaped(Self.short(d.dS_from_h)))</text>\n"
            s += box(cx, 50, 230, ["h = \(Self.short(f.h))", "δh = \(Self.short(d.dh))"], fill: "#eef5ff")
            s += box(cx, 150, 230, ["S = \(Self.short(f.S))", "δS = \(Self.short(d.dS))"], fill: "#fff4e5")
            let H = f.i.count
            s += box(cx, 250, 290, ["i \(Self.short(f.i))  f \(Self.short(f.f))", "g \(Self.short(f.g))  o \(Self.short(f.o))", "δZ \(Self.short(Array(d.dZ.prefix(2 * H))))", "   \(Self.short(Array(d.dZ.suffix(2 * H))))"], fill: "#f4f4f4")
            s += box(cx, 340, 290, ["Z = \(Self.short(Array(f.Z.prefix(2 * H))))", "    \(Self.short(Array(f.Z.suffix(2 * H))))"], fill: "#f4f4f4")
            s += box(cx, 420, 290, ["I = \(Self.short(f.I))", "δI = \(Self.short(d.dI))"], fill: "#f4f4f4")
            s += box(cx, 500, 230, ["x = \(Self.short(f.x))", "δx = \(Self.short(d.dx))"], fill: "#eef5ff")
        }
        return s + "</svg>\n"
    }
}
