import Foundation

/// Set from the SIGINT/SIGTERM handler; read between training steps.
nonisolated(unsafe) private var interruptRequested: sig_atomic_t = 0

/// Ctrl-C (SIGINT) and SIGTERM as a request to stop: training finishes the current step, saves and exits 130.
enum Interrupt {
    /// Installs the handlers for the duration of `body`. A parent may have started us with the signals blocked (a
    /// blocked mask is inherited across exec), so they are unblocked too.
    static func handling<T>(_ body: (_ requested: () -> Bool) throws -> T) rethrows -> T {
        interruptRequested = 0
        for sig in [SIGINT, SIGTERM] { signal(sig) { _ in interruptRequested = 1 } }
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGINT)
        sigaddset(&unblock, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        defer { for sig in [SIGINT, SIGTERM] { signal(sig, SIG_DFL) } }
        return try body { interruptRequested != 0 }
    }
}
