/// Splitting a batch by rows into gradient shards, and putting states back together.

extension SequenceBatch {
    /// A batch from parts already checked (rows of a checked batch).
    init(checked values: Values, steps T: Int, batch B: Int, features F: Int, layout: SequenceLayout, lengths: [Int]?) {
        self.values = values
        (steps, batch, features, self.layout, self.lengths) = (T, B, F, layout, lengths)
    }

    /// The rows `rows` of this batch, in the same layout; T shrinks to the longest of those rows.
    func rows(_ rows: Range<Int>) -> SequenceBatch {
        let T = lengths.map { l in rows.map { l[$0] }.max() ?? 1 } ?? steps, B = rows.count, F = features
        let lengths = self.lengths.map { l in rows.map { l[$0] } }
        func target(_ t: Int, _ b: Int) -> Int { layout == .timeMajor ? t * B + b : b * T + t }
        switch values {
        case .features(let v):
            var out = [Scalar](repeating: 0, count: T * B * F)
            for t in 0..<T { for b in 0..<B {
                let from = index(step: t, row: rows.lowerBound + b) * F, to = target(t, b) * F
                for f in 0..<F { out[to + f] = v[from + f] }
            } }
            return SequenceBatch(checked: .features(out), steps: T, batch: B, features: F, layout: layout, lengths: lengths)
        case .tokens(let v):
            var out = [Int32](repeating: 0, count: T * B)
            for t in 0..<T { for b in 0..<B { out[target(t, b)] = v[index(step: t, row: rows.lowerBound + b)] } }
            return SequenceBatch(checked: .tokens(out), steps: T, batch: B, features: 1, layout: layout, lengths: lengths)
        }
    }
}

extension SequenceTargets {
    /// The targets of rows `rows` of `batch` (whose targets these are), for `part` = `batch.rows(rows)`; `width` is
    /// the number of values per row or step (1 for classes).
    func rows(_ rows: Range<Int>, of batch: SequenceBatch<Scalar>, part: SequenceBatch<Scalar>, width: Int) -> SequenceTargets {
        func pick<V>(_ v: [V], fill: V) -> [V] {
            if v.count == batch.batch * width {   // one target per row (or T = 1, where both layouts agree)
                return Array(v[(rows.lowerBound * width)..<(rows.upperBound * width)])
            }
            var out = [V](repeating: fill, count: part.steps * part.batch * width)
            for t in 0..<part.steps { for b in 0..<part.batch {
                let from = batch.index(step: t, row: rows.lowerBound + b) * width, to = part.index(step: t, row: b) * width
                for k in 0..<width { out[to + k] = v[from + k] }
            } }
            return out
        }
        switch self {
        case .classes(let c): return .classes(pick(c, fill: -100))
        case .values(let v): return .values(pick(v, fill: 0))
        }
    }
}

extension LSTMState {
    /// Batch rows `rows` of this state.
    func rows(_ rows: Range<Int>) -> LSTMState {
        let B = rows.count, (P, H) = (hiddenSize, cellSize)
        var hidden = [Scalar](), cell = [Scalar]()
        hidden.reserveCapacity(layers * B * P); cell.reserveCapacity(layers * B * H)
        for l in 0..<layers {
            hidden.append(contentsOf: self.hidden[((l * batch + rows.lowerBound) * P)..<((l * batch + rows.upperBound) * P)])
            cell.append(contentsOf: self.cell[((l * batch + rows.lowerBound) * H)..<((l * batch + rows.upperBound) * H)])
        }
        return LSTMState(hidden: hidden, cell: cell, layers: layers, batch: B, hiddenSize: P, cellSize: H)
    }

    /// Writes `part` into batch rows starting at `row`.
    mutating func replaceRows(from row: Int, with part: LSTMState) {
        let (B, P, H) = (part.batch, hiddenSize, cellSize)
        for l in 0..<layers {
            hidden.replaceSubrange(((l * batch + row) * P)..<((l * batch + row + B) * P), with: part.hidden[(l * B * P)..<((l + 1) * B * P)])
            cell.replaceSubrange(((l * batch + row) * H)..<((l * batch + row + B) * H), with: part.cell[(l * B * H)..<((l + 1) * B * H)])
        }
    }
}
