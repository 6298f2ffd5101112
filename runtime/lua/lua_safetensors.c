/* fada.safetensors: load (mmap, zero-copy), header, save with a JSON config.
 *
 *   local tensors, meta, config = fada.safetensors.load(path, {dtype = 'f32'})
 *   fada.safetensors.save(path, {w = t}, {config = {dim = 64}, metadata = {k = 'v'}})
 *   local entries, meta = fada.safetensors.header(path)
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/fd_safetensors.h"
#include "runtime/lua/fd_lua.h"

#define JSON_MAX_DEPTH 64

/* ---- Lua values <-> JSON (the config lives in __metadata__ as text) ---- */

static int child_cmp(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* Orders an object's members by key: lua_next's order changes from run to
 * run (string hashes are seeded), and the same config should make the same
 * bytes. Returns 0 when out of memory (the object is then left unsorted). */
static int sort_members(cJSON *obj)
{
    int n = cJSON_GetArraySize(obj);
    if (n < 2) return 1;
    cJSON **items = malloc(sizeof *items * (size_t)n);
    if (!items) return 0;
    int i = 0;
    for (cJSON *c = obj->child; c; c = c->next) items[i++] = c;
    qsort(items, (size_t)n, sizeof *items, child_cmp);
    for (i = 0; i < n; i++) {
        items[i]->prev = i > 0 ? items[i - 1] : items[n - 1]; /* cJSON: the head's prev is the tail */
        items[i]->next = i + 1 < n ? items[i + 1] : NULL;
    }
    obj->child = items[0];
    free(items);
    return 1;
}

static cJSON *lua_to_json(lua_State *L, int idx, int depth, const char **err)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d)) { *err = "a number that is not finite"; return NULL; }
        return cJSON_CreateNumber(d);
    }
    case LUA_TSTRING: return cJSON_CreateString(lua_tostring(L, idx));
    case LUA_TTABLE: break;
    default: *err = "a value that is not a boolean, number, string or table"; return NULL;
    }
    if (depth > JSON_MAX_DEPTH) { *err = "tables nested too deep (or a cycle)"; return NULL; }
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    int is_array = n > 0;
    cJSON *out = is_array ? cJSON_CreateArray() : cJSON_CreateObject();
    if (!out) { *err = "out of memory"; return NULL; }
    if (is_array) {
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            cJSON *v = lua_to_json(L, -1, depth + 1, err);
            lua_pop(L, 1);
            if (!v) { cJSON_Delete(out); return NULL; }
            cJSON_AddItemToArray(out, v);
        }
        return out;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            cJSON_Delete(out);
            *err = "a table with keys that are not strings (and is not a sequence)";
            return NULL;
        }
        cJSON *v = lua_to_json(L, -1, depth + 1, err);
        if (!v) { lua_pop(L, 2); cJSON_Delete(out); return NULL; }
        cJSON_AddItemToObject(out, lua_tostring(L, -2), v);
        lua_pop(L, 1);
    }
    if (!sort_members(out)) { cJSON_Delete(out); *err = "out of memory"; return NULL; }
    return out;
}

static void push_json(lua_State *L, const cJSON *v, int depth)
{
    luaL_checkstack(L, 4, "json nesting");
    if (cJSON_IsBool(v)) lua_pushboolean(L, cJSON_IsTrue(v));
    else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (floor(d) == d && fabs(d) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)d);
        else lua_pushnumber(L, d);
    } else if (cJSON_IsString(v)) lua_pushstring(L, v->valuestring);
    else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        lua_newtable(L);
        if (depth > JSON_MAX_DEPTH) return;
        const cJSON *c;
        lua_Integer i = 1;
        cJSON_ArrayForEach(c, v)
        {
            push_json(L, c, depth + 1);
            if (cJSON_IsArray(v)) lua_rawseti(L, -2, i++);
            else lua_setfield(L, -2, c->string);
        }
    } else lua_pushnil(L); /* JSON null */
}

/* Pushes the metadata table (strings) and the decoded config (or nil). */
static void push_metadata(lua_State *L, const char *json)
{
    cJSON *meta = json ? cJSON_Parse(json) : NULL;
    lua_newtable(L);
    const cJSON *v;
    if (meta) cJSON_ArrayForEach(v, meta)
    {
        lua_pushstring(L, v->valuestring);
        lua_setfield(L, -2, v->string);
    }
    const cJSON *cfg = meta ? cJSON_GetObjectItemCaseSensitive(meta, "config") : NULL;
    cJSON *parsed = cfg ? cJSON_Parse(cfg->valuestring) : NULL;
    if (parsed) push_json(L, parsed, 0);
    else lua_pushnil(L);
    cJSON_Delete(parsed);
    cJSON_Delete(meta);
}

/* ---- functions -------------------------------------------------------- */

/* The header lives in a userdata while Lua code runs, so an error (or a
 * failed allocation) between reading it and freeing it leaks nothing. */
static int header_gc(lua_State *L)
{
    fd_st_header_free(lua_touserdata(L, 1));
    return 0;
}

static fd_st_header *push_header(lua_State *L)
{
    fd_st_header *h = lua_newuserdatauv(L, sizeof *h, 0);
    memset(h, 0, sizeof *h);
    if (luaL_newmetatable(L, "fada.safetensors.header")) {
        lua_pushcfunction(L, header_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return h;
}

/* load(path, [opts]) -> {name = tensor}, metadata, config */
static int st_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int convert = 0;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "dtype");
        if (!lua_isnil(L, -1)) {
            fd_dtype dt = fd_lua_optdtype(L, -1, FD_F32);
            if (dt != FD_F32) luaL_argerror(L, 2, "dtype may only be 'f32' (converts f16/bf16)");
            convert = 1;
        }
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    fd_st_header *h = push_header(L); /* 3 */
    if (fd_st_read_header(path, h)) return fd_lua_error(L);
    lua_createtable(L, 0, h->count); /* 4: the result */
    fd_tensor **outs = lua_newuserdatauv(L, sizeof *outs * (size_t)(h->count ? h->count : 1), 0); /* 5 */
    for (int i = 0; i < h->count; i++) {
        outs[i] = fd_lua_newtensor(L);
        lua_setfield(L, 4, h->entries[i].name);
    }
    if (fd_st_load(path, h, outs, convert)) return fd_lua_error(L);
    lua_pop(L, 1);
    push_metadata(L, h->metadata_json);
    return 3;
}

/* header(path) -> {{name=, dtype=, shape={}, offsets={b, e}}, ...}, metadata, config */
static int st_header(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    fd_st_header *h = push_header(L);
    if (fd_st_read_header(path, h)) return fd_lua_error(L);
    lua_createtable(L, h->count, 0);
    for (int i = 0; i < h->count; i++) {
        const fd_st_entry *e = &h->entries[i];
        lua_createtable(L, 0, 4);
        lua_pushstring(L, e->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, fd_dtype_name(e->dtype));
        lua_setfield(L, -2, "dtype");
        lua_createtable(L, e->ndim, 0);
        for (int d = 0; d < e->ndim; d++) {
            lua_pushinteger(L, e->shape[d]);
            lua_rawseti(L, -2, d + 1);
        }
        lua_setfield(L, -2, "shape");
        lua_createtable(L, 2, 0);
        lua_pushinteger(L, (lua_Integer)e->begin);
        lua_rawseti(L, -2, 1);
        lua_pushinteger(L, (lua_Integer)e->end);
        lua_rawseti(L, -2, 2);
        lua_setfield(L, -2, "offsets");
        lua_rawseti(L, -2, i + 1);
    }
    push_metadata(L, h->metadata_json);
    return 3;
}

static int names_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* save(path, {name = tensor}, [{metadata = {k = 'v'}, config = table}]) */
static int st_save(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 3);
    int count = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, 2, "tensor names must be strings");
        fd_lua_checktensor(L, -1);
        count++;
        lua_pop(L, 1);
    }
    /* Lua-owned arrays: nothing to free if an argument check raises. */
    const char **names = lua_newuserdatauv(L, sizeof *names * (size_t)(count + 1), 0);
    const fd_tensor **ts = lua_newuserdatauv(L, sizeof *ts * (size_t)(count + 1), 0);
    int k = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        names[k++] = lua_tostring(L, -2); /* kept alive by the table */
        lua_pop(L, 1);
    }
    qsort(names, (size_t)count, sizeof *names, names_cmp); /* a stable file for the same tensors */
    for (int i = 0; i < count; i++) {
        lua_getfield(L, 2, names[i]);
        ts[i] = fd_lua_checktensor(L, -1);
        lua_pop(L, 1);
    }
    cJSON *meta = cJSON_CreateObject();
    if (!meta) return luaL_error(L, "safetensors.save: out of memory");
    if (lua_istable(L, 3)) {
        const char *err = NULL;
        lua_getfield(L, 3, "metadata");
        if (lua_istable(L, -1)) {
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
                    cJSON_Delete(meta);
                    return luaL_error(L, "safetensors.save: '%s': metadata keys and values must be strings", path);
                }
                cJSON_AddStringToObject(meta, lua_tostring(L, -2), lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        lua_getfield(L, 3, "config");
        if (!lua_isnil(L, -1)) {
            cJSON *cfg = lua_to_json(L, -1, 0, &err);
            char *text = cfg ? cJSON_PrintUnformatted(cfg) : NULL;
            cJSON_Delete(cfg);
            if (!text) {
                cJSON_Delete(meta);
                return luaL_error(L, "safetensors.save: '%s': config holds %s", path, err ? err : "out of memory");
            }
            cJSON_DeleteItemFromObjectCaseSensitive(meta, "config");
            cJSON_AddStringToObject(meta, "config", text);
            cJSON_free(text);
        }
        lua_pop(L, 1);
    }
    if (!sort_members(meta)) {
        cJSON_Delete(meta);
        return luaL_error(L, "safetensors.save: out of memory");
    }
    char *meta_text = cJSON_GetArraySize(meta) ? cJSON_PrintUnformatted(meta) : NULL;
    cJSON_Delete(meta);
    int r = fd_st_save(path, count, names, ts, meta_text);
    cJSON_free(meta_text);
    if (r) return fd_lua_error(L);
    return 0;
}

void fd_open_safetensors(lua_State *L, const fd_lua_tables *t)
{
    static const luaL_Reg fns[] = {{"load", st_load}, {"save", st_save}, {"header", st_header}, {NULL, NULL}};
    lua_newtable(L);
    fd_lua_setfuncs(L, -1, fns);
    lua_setfield(L, t->fada, "safetensors");
}
