// MPI by dlopen. The handles differ between implementations: Open MPI's MPI_COMM_WORLD and MPI_BYTE are the
// addresses of exported globals (ompi_mpi_comm_world, ompi_mpi_byte); MPICH's are integer constants
// (MPI_COMM_WORLD = 0x44000000, MPI_BYTE = 0x4c00010d, from its mpi.h). Handles travel as pointer-sized values:
// an MPICH handle is an `int` parameter, and on x86-64 and AArch64 an int argument is the low 32 bits of the
// same register, so one set of function pointer types serves both.
#include "LSTMMPI.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void *handle_t;

static int (*p_init)(int *, char ***);
static int (*p_initialized)(int *);
static int (*p_finalize)(void);
static int (*p_finalized)(int *);
static int (*p_abort)(handle_t, int);
static int (*p_comm_rank)(handle_t, int *);
static int (*p_comm_size)(handle_t, int *);
static int (*p_get_library_version)(char *, int *);
static int (*p_alltoallv)(const void *, const int *, const int *, handle_t, void *, const int *, const int *,
                          handle_t, handle_t);
static int (*p_allgatherv)(const void *, int, handle_t, void *, const int *, const int *, handle_t, handle_t);

static handle_t comm_world;
static handle_t byte_type;
static void *in_place;  // MPI_IN_PLACE: (void *)1 in Open MPI, (void *)-1 in MPICH
static int started;
static int world_rank;
static int world_size = 1;
static char version[1024];

static void *open_library(const char *library, char *error, int error_size) {
    if (library != NULL && library[0] != 0) {
        void *h = dlopen(library, RTLD_NOW | RTLD_GLOBAL);
        if (h == NULL) snprintf(error, (size_t)error_size, "cannot load the MPI library %s: %s", library, dlerror());
        return h;
    }
    static const char *const names[] = {
        "libmpi.so.40", "libmpi.so", "libmpich.so.12", "libmpich.so",
        "libmpi.40.dylib", "libmpi.dylib", "libmpich.12.dylib", "libmpich.dylib",
        "/opt/homebrew/lib/libmpi.dylib", "/usr/local/lib/libmpi.dylib",
        "/opt/homebrew/lib/libmpich.dylib", "/usr/local/lib/libmpich.dylib",
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        void *h = dlopen(names[k], RTLD_NOW | RTLD_GLOBAL);
        if (h != NULL) return h;
    }
    snprintf(error, (size_t)error_size,
             "no MPI library found (tried libmpi.so.40, libmpich.so.12 and others): install Open MPI "
             "(Debian: apt-get install openmpi-bin) or MPICH, or name the library in LSTMKIT_MPI_LIBRARY");
    return NULL;
}

#define LOOK_UP(pointer, name)                                                                      \
    do {                                                                                            \
        *(void **)(&pointer) = dlsym(h, name);                                                      \
        if (pointer == NULL) {                                                                      \
            snprintf(error, (size_t)error_size, "the MPI library lacks %s", name);                  \
            return 1;                                                                               \
        }                                                                                           \
    } while (0)

int lstmkit_mpi_start(const char *library, char *error, int error_size) {
    if (started) return 0;
    void *h = open_library(library, error, error_size);
    if (h == NULL) return 1;
    LOOK_UP(p_init, "MPI_Init");
    LOOK_UP(p_initialized, "MPI_Initialized");
    LOOK_UP(p_finalize, "MPI_Finalize");
    LOOK_UP(p_finalized, "MPI_Finalized");
    LOOK_UP(p_abort, "MPI_Abort");
    LOOK_UP(p_comm_rank, "MPI_Comm_rank");
    LOOK_UP(p_comm_size, "MPI_Comm_size");
    LOOK_UP(p_get_library_version, "MPI_Get_library_version");
    LOOK_UP(p_alltoallv, "MPI_Alltoallv");
    LOOK_UP(p_allgatherv, "MPI_Allgatherv");

    int length = 0;
    char text[8192];  // MPI_MAX_LIBRARY_VERSION_STRING: 256 in Open MPI, 8192 in MPICH
    memset(text, 0, sizeof text);
    if (p_get_library_version(text, &length) != 0) {
        snprintf(error, (size_t)error_size, "MPI_Get_library_version failed");
        return 1;
    }
    snprintf(version, sizeof version, "%s", text);
    char *newline = strchr(version, '\n');
    if (newline != NULL) *newline = 0;

    if (strstr(text, "Open MPI") != NULL) {
        comm_world = dlsym(h, "ompi_mpi_comm_world");
        byte_type = dlsym(h, "ompi_mpi_byte");
        in_place = (void *)1;
        if (comm_world == NULL || byte_type == NULL) {
            snprintf(error, (size_t)error_size, "the Open MPI library lacks ompi_mpi_comm_world or ompi_mpi_byte");
            return 1;
        }
    } else if (strstr(text, "MPICH") != NULL) {
        comm_world = (handle_t)(intptr_t)0x44000000;
        byte_type = (handle_t)(intptr_t)0x4c00010d;
        in_place = (void *)-1;
    } else {
        snprintf(error, (size_t)error_size, "unknown MPI implementation (%s): Open MPI and MPICH are supported",
                 version);
        return 1;
    }

    int already = 0;
    p_initialized(&already);
    if (!already && p_init(NULL, NULL) != 0) {
        snprintf(error, (size_t)error_size, "MPI_Init failed (%s)", version);
        return 1;
    }
    p_comm_rank(comm_world, &world_rank);
    p_comm_size(comm_world, &world_size);
    started = 1;
    return 0;
}

void lstmkit_mpi_finish(void) {
    if (!started) return;
    int done = 0;
    p_finalized(&done);
    if (!done) p_finalize();
    started = 0;
}

void lstmkit_mpi_abort(int code) {
    if (started) p_abort(comm_world, code);
}

int lstmkit_mpi_rank(void) { return world_rank; }
int lstmkit_mpi_size(void) { return world_size; }
const char *lstmkit_mpi_library_version(void) { return version; }

int lstmkit_mpi_alltoallv(const void *send, const int *send_counts, const int *send_offsets,
                          void *receive, const int *receive_counts, const int *receive_offsets) {
    return p_alltoallv(send, send_counts, send_offsets, byte_type, receive, receive_counts, receive_offsets,
                       byte_type, comm_world);
}

int lstmkit_mpi_allgatherv(const void *send, int send_count,
                           void *receive, const int *receive_counts, const int *receive_offsets) {
    return p_allgatherv(send, send_count, byte_type, receive, receive_counts, receive_offsets, byte_type,
                        comm_world);
}

int lstmkit_mpi_allgatherv_in_place(void *receive, const int *receive_counts, const int *receive_offsets) {
    return p_allgatherv(in_place, 0, byte_type, receive, receive_counts, receive_offsets, byte_type, comm_world);
}
