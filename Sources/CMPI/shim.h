#ifndef QTRAIN_CMPI_SHIM_H
#define QTRAIN_CMPI_SHIM_H
#include <mpi.h>
// Open MPI defines its predefined handles as macros over the addresses of global structs,
// which Swift cannot import; these functions hand them over as values.
static inline MPI_Comm qt_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype qt_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype qt_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype qt_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype qt_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype qt_mpi_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Op qt_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op qt_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op qt_mpi_min(void) { return MPI_MIN; }
static inline MPI_Request qt_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *qt_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Errhandler qt_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int qt_mpi_success(void) { return MPI_SUCCESS; }
static inline void *qt_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Info qt_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline int qt_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int qt_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int qt_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int qt_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
#endif
