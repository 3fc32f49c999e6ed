// MPI loaded at run time (dlopen), so that LSTMKit builds and runs where no MPI is installed, and links no MPI
// header or library at build time. Only what data-parallel training needs: world rank and size, and byte
// exchanges (alltoallv, allgatherv). Every sum is done by LSTMKit in a fixed order, so no MPI
// reduction (and no MPI datatype but bytes) is used.
#ifndef LSTMKIT_MPI_H
#define LSTMKIT_MPI_H

#ifdef __cplusplus
extern "C" {
#endif

/// Opens the MPI library (`library`, or when NULL the first of libmpi.so.40, libmpi.so, libmpich.so.12,
/// libmpich.so and their macOS names), looks up the functions, tells Open MPI from MPICH by
/// MPI_Get_library_version, and calls MPI_Init. 0 on success; otherwise a message in `error`.
int lstmkit_mpi_start(const char *library, char *error, int error_size);
/// MPI_Finalize. Safe to call when not started.
void lstmkit_mpi_finish(void);
/// MPI_Abort on the world: ends every process of the job with `code`.
void lstmkit_mpi_abort(int code);

int lstmkit_mpi_rank(void);
int lstmkit_mpi_size(void);
/// The library's version line ("Open MPI v4.1.4, …" or "MPICH Version: …"), after a successful start.
const char *lstmkit_mpi_library_version(void);

/// Each of the calls below returns the MPI error code (0 = MPI_SUCCESS). Counts and offsets are in bytes.
int lstmkit_mpi_alltoallv(const void *send, const int *send_counts, const int *send_offsets,
                          void *receive, const int *receive_counts, const int *receive_offsets);
int lstmkit_mpi_allgatherv(const void *send, int send_count,
                           void *receive, const int *receive_counts, const int *receive_offsets);
/// MPI_Allgatherv with MPI_IN_PLACE: this process's part is already at its offset in `receive`.
int lstmkit_mpi_allgatherv_in_place(void *receive, const int *receive_counts, const int *receive_offsets);

#ifdef __cplusplus
}
#endif
#endif
