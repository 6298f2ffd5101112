/* safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 * "__metadata__": {"k": "string"}}), then the data. Loading maps the file
 * and wraps each tensor's bytes without copying (fd_storage_wrap; the map is
 * unmapped when the last tensor from it goes). The header is validated
 * strictly before anything is made from it: size limit, known dtypes,
 * shape x dtype size = byte length without overflow, offsets in bounds,
 * non-overlapping and covering the data (the format forbids holes). */
#ifndef FD_SAFETENSORS_H
#define FD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

#define FD_ST_MAX_HEADER ((uint64_t)100 << 20) /* as the reference implementation */

typedef struct fd_st_entry {
    char *name;
    fd_dtype dtype;
    int ndim;
    int64_t shape[FD_MAX_DIMS];
    uint64_t begin, end; /* byte offsets into the data section */
} fd_st_entry;

typedef struct fd_st_header {
    fd_st_entry *entries; /* in file order of their offsets */
    int count;
    char *metadata_json;  /* the __metadata__ object as JSON text, or NULL */
    uint64_t data_start;  /* 8 + N */
    uint64_t data_len;
} fd_st_header;

/* Parses and validates a header held in buf[0, n) (at least 8 + N bytes of
 * it) of a file of file_size bytes. `what` names the file in messages. */
int fd_st_parse_header(const char *what, const uint8_t *buf, size_t n, uint64_t file_size, fd_st_header *out);
void fd_st_header_free(fd_st_header *h);

/* Reads and validates only the header of path. */
int fd_st_read_header(const char *path, fd_st_header *out);

/* Loads every tensor of path into out[i] (i < h->count, in the order of
 * h->entries; h from fd_st_read_header on the same path). f32/f16/bf16 and the rest
 * are views of the mapped file when aligned (copies otherwise); when
 * convert_half is set, f16/bf16 become f32 copies. */
int fd_st_load(const char *path, const fd_st_header *h, fd_tensor *const *out, int convert_half);

/* Writes count tensors (any layout; written contiguous) with optional
 * metadata (a JSON object whose values are strings) to path, through a
 * temporary file renamed on success. Names must be unique. */
int fd_st_save(const char *path, int count, const char *const *names, const fd_tensor *const *tensors,
               const char *metadata_json);

#endif
