/// Checks what a caller passed (a shape, an index, a count). Unlike `precondition`, whose message `-O` drops (a bare
/// trap), the message survives release builds, so a wrong shape stops with "got X, expected Y". APIs that take
/// user data throw instead (`SequenceModel`, `SequenceBatch`, the file readers); this is for the layer-level calls.
@inline(__always)
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
             file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}
