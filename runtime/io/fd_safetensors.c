/* safetensors load (mmap, zero-copy) and save, with strict header checks. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/io/fd_io.h"
#include "runtime/io/fd_safetensors.h"

static const struct {
    const char *name;
    fd_dtype dt;
} st_dtypes[] = {
    {"F32", FD_F32}, {"F64", FD_F64}, {"F16", FD_F16}, {"BF16", FD_BF16},
    {"I32", FD_I32}, {"I64", FD_I64}, {"U8", FD_U8},   {"BOOL", FD_BOOL},
};
/* Valid in the format but with no fada dtype: refused by name, not as garbage. */
static const char *st_unsupported[] = {"I8", "I16", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2"};

static const char *st_name_of(fd_dtype dt)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
        if (st_dtypes[i].dt == dt) return st_dtypes[i].name;
    return NULL;
}

void fd_st_header_free(fd_st_header *h)
{
    if (!h) return;
    for (int i = 0; i < h->count; i++) free(h->entries[i].name);
    free(h->entries);
    free(h->metadata_json);
    memset(h, 0, sizeof *h);
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int by_begin(const void *a, const void *b)
{
    const fd_st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const fd_st_entry *const *)a)->name, (*(const fd_st_entry *const *)b)->name);
}

static int parse_entry(const char *what, const cJSON *item, uint64_t data_len, fd_st_entry *e)
{
    const char *name = item->string;
    if (!cJSON_IsObject(item)) return fd_fail("safetensors: '%s': entry '%s' is not an object", what, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt)) return fd_fail("safetensors: '%s': tensor '%s' has no dtype string", what, name);
    int found = 0;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
        if (!strcmp(dt->valuestring, st_dtypes[i].name)) {
            e->dtype = st_dtypes[i].dt;
            found = 1;
        }
    if (!found) {
        for (size_t i = 0; i < sizeof st_unsupported / sizeof *st_unsupported; i++)
            if (!strcmp(dt->valuestring, st_unsupported[i]))
                return fd_fail("safetensors: '%s': tensor '%s': dtype %s is not supported by fada", what, name,
                               dt->valuestring);
        return fd_fail("safetensors: '%s': tensor '%s': unknown dtype '%.32s'", what, name, dt->valuestring);
    }
    if (!cJSON_IsArray(shape)) return fd_fail("safetensors: '%s': tensor '%s' has no shape array", what, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > FD_MAX_DIMS)
        return fd_fail("safetensors: '%s': tensor '%s' has %d dims (at most %d)", what, name, ndim, FD_MAX_DIMS);
    e->ndim = ndim;
    uint64_t numel = 1;
    int k = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape)
    {
        uint64_t v;
        if (!json_uint(d, &v))
            return fd_fail("safetensors: '%s': tensor '%s': shape[%d] is not an integer in [0, 2^53]", what, name, k);
        if (__builtin_mul_overflow(numel, v, &numel) || numel > (uint64_t)INT64_MAX)
            return fd_fail("safetensors: '%s': tensor '%s': shape overflows", what, name);
        e->shape[k++] = (int64_t)v;
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)fd_dtype_size(e->dtype), &nbytes))
        return fd_fail("safetensors: '%s': tensor '%s': byte size overflows", what, name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(cJSON_GetArrayItem(offs, 0), &e->begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), &e->end))
        return fd_fail("safetensors: '%s': tensor '%s': data_offsets must be [begin, end] integers", what, name);
    if (e->begin > e->end)
        return fd_fail("safetensors: '%s': tensor '%s': data_offsets [%llu, %llu] end before begin", what, name,
                       (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > data_len)
        return fd_fail("safetensors: '%s': tensor '%s': data_offsets [%llu, %llu] past the end of the data (%llu bytes)",
                       what, name, (unsigned long long)e->begin, (unsigned long long)e->end,
                       (unsigned long long)data_len);
    if (e->end - e->begin != nbytes)
        return fd_fail("safetensors: '%s': tensor '%s': shape %s x %s (%llu bytes) ~= data_offsets length %llu", what,
                       name, fd_shape_str((char[128]){0}, 128, e->ndim, e->shape), dt->valuestring,
                       (unsigned long long)nbytes, (unsigned long long)(e->end - e->begin));
    e->name = strdup(name);
    if (!e->name) return fd_fail("safetensors: out of memory");
    return FD_OK;
}

/* The reference rules on the header's text that a JSON parser lets through:
 * UTF-8 only; numbers only as non-negative integers (the header's numbers are
 * shapes and offsets, and serde refuses 2.0 or 1e3 for an integer); after the
 * object, nothing but spaces (the padding writers use to align the data). */
static int header_text_ok(const char *what, const uint8_t *s, size_t n, size_t json_end)
{
    for (size_t i = 0; i < n;) { /* UTF-8: well-formed, shortest form, no surrogates, <= U+10FFFF */
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        if (len == 0 || i + len > n) goto bad_utf8;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto bad_utf8;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad_utf8;
        i += len;
        continue;
    bad_utf8:
        return fd_fail("safetensors: '%s': the header is not valid UTF-8 (byte %zu)", what, i);
    }
    int in_string = 0;
    for (size_t i = 0; i < json_end; i++) { /* number tokens outside strings */
        uint8_t c = s[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
            continue;
        }
        if (c == '"') in_string = 1;
        else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            while (j < json_end && s[j] && strchr("0123456789+-.eE", s[j])) j++;
            for (size_t k = i; k < j; k++)
                if (!(s[k] >= '0' && s[k] <= '9'))
                    return fd_fail("safetensors: '%s': the header writes the number '%.*s' (byte %zu); shapes and "
                                   "offsets must be plain non-negative integers", what, (int)(j - i < 24 ? j - i : 24),
                                   (const char *)s + i, i);
            i = j - 1;
        }
    }
    for (size_t i = json_end; i < n; i++)
        if (s[i] != ' ')
            return fd_fail("safetensors: '%s': byte %zu of the header (0x%02x) follows its JSON object; only spaces may "
                           "pad a header", what, i, s[i]);
    return FD_OK;
}

static int check_layout(const char *what, fd_st_header *h)
{
    qsort(h->entries, (size_t)h->count, sizeof *h->entries, by_begin);
    uint64_t pos = 0;
    for (int i = 0; i < h->count; i++) {
        const fd_st_entry *e = &h->entries[i];
        if (e->begin < pos)
            return fd_fail("safetensors: '%s': tensor '%s' [%llu, %llu] overlaps '%s' (ends at %llu)", what, e->name,
                           (unsigned long long)e->begin, (unsigned long long)e->end, h->entries[i - 1].name,
                           (unsigned long long)pos);
        if (e->begin > pos)
            return fd_fail("safetensors: '%s': hole in the data before tensor '%s' (bytes %llu..%llu are not indexed)",
                           what, e->name, (unsigned long long)pos, (unsigned long long)e->begin);
        pos = e->end;
    }
    if (pos != h->data_len)
        return fd_fail("safetensors: '%s': the tensors cover %llu of %llu data bytes", what, (unsigned long long)pos,
                       (unsigned long long)h->data_len);
    /* cJSON keeps duplicate keys; the format does not allow them. */
    fd_st_entry **sorted = malloc(sizeof *sorted * (h->count > 0 ? (size_t)h->count : 1));
    if (!sorted) return fd_fail("safetensors: out of memory");
    for (int i = 0; i < h->count; i++) sorted[i] = &h->entries[i];
    qsort(sorted, (size_t)h->count, sizeof *sorted, by_name);
    for (int i = 1; i < h->count; i++)
        if (!strcmp(sorted[i]->name, sorted[i - 1]->name)) {
            int r = fd_fail("safetensors: '%s': tensor name '%s' appears twice", what, sorted[i]->name);
            free(sorted);
            return r;
        }
    free(sorted);
    return FD_OK;
}

int fd_st_parse_header(const char *what, const uint8_t *buf, size_t n, uint64_t file_size, fd_st_header *out)
{
    memset(out, 0, sizeof *out);
    if (n < 8 || file_size < 8)
        return fd_fail("safetensors: '%s': %llu bytes is too short for the 8-byte header length", what,
                       (unsigned long long)file_size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    if (hlen > FD_ST_MAX_HEADER)
        return fd_fail("safetensors: '%s': header length %llu exceeds the limit of %llu bytes", what,
                       (unsigned long long)hlen, (unsigned long long)FD_ST_MAX_HEADER);
    if (hlen > file_size - 8)
        return fd_fail("safetensors: '%s': header length %llu is past the end of the file (%llu bytes)", what,
                       (unsigned long long)hlen, (unsigned long long)file_size);
    if (hlen < 2 || n < 8 + hlen) return fd_fail("safetensors: '%s': header of %llu bytes is too short", what,
                                                (unsigned long long)hlen);
    if (buf[8] != '{') return fd_fail("safetensors: '%s': header does not start with '{'", what);
    const char *json_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)buf + 8, (size_t)hlen, &json_end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fd_fail("safetensors: '%s': header is not a valid JSON object", what);
    }
    if (header_text_ok(what, buf + 8, (size_t)hlen, (size_t)(json_end - (const char *)buf - 8))) {
        cJSON_Delete(root);
        return FD_ERR;
    }
    out->data_start = 8 + hlen;
    out->data_len = file_size - out->data_start;
    int total = cJSON_GetArraySize(root);
    out->entries = calloc((size_t)(total ? total : 1), sizeof *out->entries);
    if (!out->entries) {
        cJSON_Delete(root);
        return fd_fail("safetensors: out of memory");
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        if (!strcmp(item->string, "__metadata__")) {
            if (!cJSON_IsObject(item) || out->metadata_json) goto bad_meta;
            const cJSON *v;
            cJSON_ArrayForEach(v, item) if (!cJSON_IsString(v)) goto bad_meta;
            out->metadata_json = cJSON_PrintUnformatted(item);
            if (!out->metadata_json) goto oom;
            continue;
        }
        if (parse_entry(what, item, out->data_len, &out->entries[out->count])) goto fail;
        out->count++;
    }
    cJSON_Delete(root);
    if (check_layout(what, out)) {
        fd_st_header_free(out);
        return FD_ERR;
    }
    return FD_OK;
bad_meta:
    fd_fail("safetensors: '%s': __metadata__ must be one object of string values", what);
    goto fail;
oom:
    fd_fail("safetensors: out of memory");
fail:
    cJSON_Delete(root);
    fd_st_header_free(out);
    return FD_ERR;
}

int fd_st_read_header(const char *path, fd_st_header *out)
{
    size_t size;
    memset(out, 0, sizeof *out);
    if (fd_io_check_input("safetensors", path, &size)) return FD_ERR;
    FILE *f = fopen(path, "rb");
    if (!f) return fd_fail("safetensors: '%s': %s", path, strerror(errno));
    uint8_t head[8];
    if (size < 8 || fread(head, 1, 8, f) != 8) {
        fclose(f);
        return fd_fail("safetensors: '%s': %zu bytes is too short for the 8-byte header length", path, size);
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | head[i];
    if (hlen > FD_ST_MAX_HEADER || hlen > size - 8) {
        fclose(f);
        return fd_st_parse_header(path, head, 8, size, out); /* reports which limit */
    }
    uint8_t *buf = malloc(8 + hlen);
    if (!buf) {
        fclose(f);
        return fd_fail("safetensors: out of memory");
    }
    memcpy(buf, head, 8);
    size_t got = fread(buf + 8, 1, hlen, f);
    fclose(f);
    int r = got == hlen ? fd_st_parse_header(path, buf, 8 + hlen, size, out)
                        : fd_fail("safetensors: '%s': short read of the header", path);
    free(buf);
    return r;
}

/* ---- loading: one shared mapping, one wrapped storage per tensor ------ */

typedef struct st_map {
    void *addr;
    size_t len;
    atomic_int refs;
} st_map;

static void st_map_release(st_map *m)
{
    if (atomic_fetch_sub(&m->refs, 1) != 1) return;
    munmap(m->addr, m->len);
    free(m);
}

static void st_storage_free(fd_storage *s) { st_map_release(s->owner); }

int fd_st_load(const char *path, const fd_st_header *h, fd_tensor *const *out, int convert_half)
{
    size_t size;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return fd_fail("safetensors: '%s': %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != h->data_start + h->data_len) {
        close(fd);
        return fd_fail("safetensors: '%s': the file changed while it was being read", path);
    }
    size = (size_t)st.st_size;
    st_map *m = calloc(1, sizeof *m);
    /* Private and writable: in-place ops on a loaded tensor copy the page
     * instead of faulting, and never write back to the checkpoint. */
    void *addr = m ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    int e = errno;
    close(fd);
    if (addr == MAP_FAILED) {
        free(m);
        return fd_fail("safetensors: '%s': cannot map %zu bytes: %s", path, size, m ? strerror(e) : "out of memory");
    }
    m->addr = addr;
    m->len = size;
    atomic_store(&m->refs, 1); /* ours, dropped at the end */
    int i;
    for (i = 0; i < h->count; i++) {
        const fd_st_entry *en = &h->entries[i];
        fd_tensor *t = out[i];
        fd_tensor_release(t);
        char *bytes = (char *)addr + h->data_start + en->begin;
        size_t nbytes = (size_t)(en->end - en->begin);
        size_t es = fd_dtype_size(en->dtype);
        int half = en->dtype == FD_F16 || en->dtype == FD_BF16;
        if (convert_half && half) {
            if (fd_tensor_empty(t, FD_F32, en->ndim, en->shape)) break;
            fd_convert_to_f32(fd_tensor_data(t), bytes, en->dtype, (int64_t)(nbytes / es));
            continue;
        }
        if ((uintptr_t)bytes % es == 0) {
            if (fd_storage_wrap(&t->storage, bytes, nbytes, st_storage_free, m)) break;
            atomic_fetch_add(&m->refs, 1);
            t->offset = 0;
            t->dtype = en->dtype;
            t->ndim = en->ndim;
            memcpy(t->shape, en->shape, sizeof t->shape);
            fd_contiguous_strides(t->ndim, t->shape, t->stride);
        } else { /* the format does not promise alignment: copy */
            if (fd_tensor_empty(t, en->dtype, en->ndim, en->shape)) break;
            memcpy(fd_tensor_data(t), bytes, nbytes);
        }
    }
    st_map_release(m);
    if (i < h->count) {
        for (int j = 0; j < i; j++) fd_tensor_release(out[j]);
        return FD_ERR;
    }
    return FD_OK;
}

/* ---- saving ----------------------------------------------------------- */

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

int fd_st_save(const char *path, int count, const char *const *names, const fd_tensor *const *tensors,
               const char *metadata_json)
{
    char tmp[4200];
    if (fd_io_temp_name("safetensors.save", path, tmp, sizeof tmp)) return FD_ERR;
    cJSON *root = cJSON_CreateObject();
    fd_tensor *flat = calloc((size_t)(count ? count : 1), sizeof *flat);
    char *text = NULL;
    FILE *f = NULL;
    int status = FD_ERR;
    if (!root || !flat) {
        fd_fail("safetensors.save: out of memory");
        goto done;
    }
    if (metadata_json) {
        cJSON *meta = cJSON_Parse(metadata_json);
        const cJSON *v;
        int ok = cJSON_IsObject(meta);
        if (ok) cJSON_ArrayForEach(v, meta) if (!cJSON_IsString(v)) ok = 0;
        if (!ok) {
            cJSON_Delete(meta);
            fd_fail("safetensors.save: '%s': metadata must be an object of string values", path);
            goto done;
        }
        cJSON_AddItemToObject(root, "__metadata__", meta);
    }
    uint64_t pos = 0;
    for (int i = 0; i < count; i++) {
        const char *dt = st_name_of(tensors[i]->dtype);
        if (!dt) {
            fd_fail("safetensors.save: '%s': tensor '%s' has dtype %s, which safetensors cannot hold", path, names[i],
                    fd_dtype_name(tensors[i]->dtype));
            goto done;
        }
        if (!strcmp(names[i], "__metadata__") || cJSON_GetObjectItemCaseSensitive(root, names[i])) {
            fd_fail("safetensors.save: '%s': tensor name '%s' is reserved or repeated", path, names[i]);
            goto done;
        }
        if (fd_tensor_contiguous(&flat[i], tensors[i])) goto done;
        uint64_t nbytes = (uint64_t)fd_tensor_numel(&flat[i]) * fd_dtype_size(flat[i].dtype);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(root, names[i], e);
        cJSON_AddStringToObject(e, "dtype", dt);
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < flat[i].ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)flat[i].shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)pos));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(pos + nbytes)));
        pos += nbytes;
    }
    text = cJSON_PrintUnformatted(root);
    if (!text) {
        fd_fail("safetensors.save: out of memory");
        goto done;
    }
    size_t tlen = strlen(text), padded = (tlen + 7) / 8 * 8; /* keeps the data 8-byte aligned */
    f = fopen(tmp, "wb");
    if (!f) {
        fd_fail("safetensors.save: '%s': %s", path, strerror(errno));
        goto done;
    }
    uint8_t head[8];
    for (int i = 0; i < 8; i++) head[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int bad = write_all(f, head, 8) || write_all(f, text, tlen);
    for (size_t i = tlen; i < padded && !bad; i++) bad = fputc(' ', f) == EOF;
    for (int i = 0; i < count && !bad; i++)
        bad = write_all(f, fd_tensor_data(&flat[i]), (size_t)fd_tensor_numel(&flat[i]) * fd_dtype_size(flat[i].dtype));
    if (fclose(f) != 0) bad = 1;
    f = NULL;
    if (bad) {
        fd_fail("safetensors.save: '%s': write failed: %s", path, strerror(errno));
        remove(tmp);
        goto done;
    }
    status = fd_io_commit("safetensors.save", tmp, path);
done:
    if (f) {
        fclose(f);
        remove(tmp);
    }
    free(text);
    cJSON_Delete(root);
    if (flat)
        for (int i = 0; i < count; i++) fd_tensor_release(&flat[i]);
    free(flat);
    return status;
}
