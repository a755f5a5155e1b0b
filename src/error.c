/*
 * error.c - error codes to names and sentences.
 *
 * DESIGN: two X-macro tables drive everything. The library's own codes come
 * from PP_ERRNO_MAP in the public header; the errno values the library can
 * hand back (negated) are listed in PP__ERRNO_SYS_MAP below, each with a
 * name and a sentence written here. Both lookups are plain switch
 * statements over constants, so they touch no shared state, need no lock and
 * never call strerror() (which is not thread-safe and locale-dependent).
 * Every string returned is a string literal: static, never NULL.
 * Callers may pass either -EINVAL or EINVAL; both give the same answer,
 * since only the library's own codes need the sign to be told apart.
 */
#include <errno.h>

#include "procpool.h"

/* XX(name, sentence) for every errno value the library may return as -errno. */
#define PP__ERRNO_SYS_MAP(XX)                                                                      \
    XX(EINVAL, "invalid argument")                                                                 \
    XX(ENOMEM, "out of memory")                                                                    \
    XX(ETIMEDOUT, "the wait timed out before the work was done")                                   \
    XX(EBUSY, "the resource is busy or already set")                                               \
    XX(EDEADLK, "the call would wait on itself and deadlock")                                      \
    XX(ENOTSUP, "the operation is not supported by this build or system")                          \
    XX(EAGAIN, "the resource is temporarily unavailable; try again")                               \
    XX(EPERM, "the operation is not permitted")                                                    \
    XX(ENOENT, "no such file or directory")                                                        \
    XX(EMFILE, "this process has too many open files")                                             \
    XX(ENFILE, "the system has too many open files")                                               \
    XX(ENOSPC, "no space left on the device")                                                      \
    XX(ECHILD, "no such child process (it was already reaped)")                                    \
    XX(ESRCH, "no such process")                                                                   \
    XX(EINTR, "the call was interrupted by a signal")                                              \
    XX(EIO, "an input/output error occurred")                                                      \
    XX(EPIPE, "the other end of the pipe is gone")                                                 \
    XX(EFAULT, "a bad memory address was passed")                                                  \
    XX(ERANGE, "a value is out of range")                                                          \
    XX(EOVERFLOW, "a value is too large for its type")                                             \
    XX(ENOSYS, "the system call is not implemented by this kernel")                                \
    XX(EBADF, "a bad file descriptor was used")                                                    \
    XX(ECONNRESET, "the connection was reset by the other end")                                    \
    XX(E2BIG, "the argument list is too long")                                                     \
    XX(ENOEXEC, "the program file cannot be executed")                                             \
    XX(EACCES, "permission denied")                                                                \
    XX(EFBIG, "a file would grow past the file size limit (RLIMIT_FSIZE)")                         \
    XX(EOWNERDEAD, "the previous holder of the lock died while holding it")                        \
    XX(ENOTRECOVERABLE, "the lock's state is not recoverable")                                     \
    XX(ECANCELED, "the operation was cancelled")                                                   \
    XX(ENOBUFS, "no buffer space is available")                                                    \
    XX(ETOOMANYREFS, "too many file descriptors are in flight between processes")                  \
    XX(ENODEV, "no such device")                                                                   \
    XX(ENAMETOOLONG, "a file name is too long")                                                    \
    XX(ELOOP, "too many levels of symbolic links")                                                 \
    XX(ETXTBSY, "the program file is busy")                                                        \
    XX(EISDIR, "the file is a directory")                                                          \
    XX(EROFS, "the file system is read-only")                                                      \
    XX(ENXIO, "no such device or address (a FIFO without a reader)")                               \
    XX(EPROTO, "a protocol error occurred")

/* Fold a code to the value a switch can test: own codes stay negative,
 * errno values become positive whatever sign the caller used. */
static int pp__err_fold(int err, int *is_own) {
    switch (err) {
#define PP__ERR_OWN_CASE(name, val, msg) case (val):
        PP_ERRNO_MAP(PP__ERR_OWN_CASE)
#undef PP__ERR_OWN_CASE
        *is_own = 1;
        return err;
    default:
        *is_own = 0;
        /* err == INT_MIN cannot be negated; it is unknown anyway. */
        if (err < 0 && err != (-2147483647 - 1))
            return -err;
        return err;
    }
}

PP_EXTERN const char *pp_strerror(int err) {
    int own;
    int v;

    if (err == 0)
        return "success";
    v = pp__err_fold(err, &own);
    if (own) {
        switch (v) {
#define PP__ERR_OWN_MSG(name, val, msg)                                                            \
    case (val): return msg;
            PP_ERRNO_MAP(PP__ERR_OWN_MSG)
#undef PP__ERR_OWN_MSG
        default: break;
        }
        return "unknown error";
    }
    switch (v) {
#define PP__ERR_SYS_MSG(name, msg)                                                                 \
    case name: return msg;
        PP__ERRNO_SYS_MAP(PP__ERR_SYS_MSG)
#undef PP__ERR_SYS_MSG
    default: break;
    }
    return "unknown error";
}

PP_EXTERN const char *pp_err_name(int err) {
    int own;
    int v;

    if (err == 0)
        return "OK";
    v = pp__err_fold(err, &own);
    if (own) {
        switch (v) {
#define PP__ERR_OWN_NAME(name, val, msg)                                                           \
    case (val): return "PP_" #name;
            PP_ERRNO_MAP(PP__ERR_OWN_NAME)
#undef PP__ERR_OWN_NAME
        default: break;
        }
        return "UNKNOWN";
    }
    switch (v) {
#define PP__ERR_SYS_NAME(name, msg)                                                                \
    case name: return #name;
        PP__ERRNO_SYS_MAP(PP__ERR_SYS_NAME)
#undef PP__ERR_SYS_NAME
    default: break;
    }
    return "UNKNOWN";
}
