/* fada.Generator, fada.manual_seed, fada.rand/randn/randint, t:uniform_/normal_. */
#include <time.h>

#include "runtime/core/fd_rng.h"
#include "runtime/lua/fd_lua.h"

#define GENERATOR_MT "fada.Generator"
#define DEFAULT_GENERATOR_KEY "fada.default_generator"

static fd_generator *push_generator(lua_State *L, uint64_t seed)
{
    fd_generator *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->seed = seed;
    g->offset = 0;
    luaL_setmetatable(L, GENERATOR_MT);
    return g;
}

static fd_generator *default_generator(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_GENERATOR_KEY);
    fd_generator *g = lua_touserdata(L, -1);
    lua_pop(L, 1); /* the registry keeps it alive */
    return g;
}

/* A generator anywhere in args [from, top], or the default one. */
static fd_generator *find_generator(lua_State *L, int from)
{
    for (int i = from; i <= lua_gettop(L); i++) {
        fd_generator *g = luaL_testudata(L, i, GENERATOR_MT);
        if (g) return g;
    }
    return default_generator(L);
}

/* A dtype name anywhere in args [from, top]. */
static fd_dtype find_dtype(lua_State *L, int from, fd_dtype def)
{
    for (int i = from; i <= lua_gettop(L); i++)
        if (lua_type(L, i) == LUA_TSTRING) return fd_lua_optdtype(L, i, def);
    return def;
}

/* fada.Generator([seed]): seed defaults to the clock */
static int f_generator(lua_State *L)
{
    uint64_t seed = lua_isnoneornil(L, 1) ? (uint64_t)time(NULL) : (uint64_t)luaL_checkinteger(L, 1);
    push_generator(L, seed);
    return 1;
}

static int g_manual_seed(lua_State *L)
{
    fd_generator *g = luaL_checkudata(L, 1, GENERATOR_MT);
    g->seed = (uint64_t)luaL_checkinteger(L, 2);
    g->offset = 0;
    lua_settop(L, 1);
    return 1;
}

static int g_seed(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)((fd_generator *)luaL_checkudata(L, 1, GENERATOR_MT))->seed);
    return 1;
}

/* g:get_state() -> {seed = s, offset = o}: all a checkpoint needs to resume */
static int g_get_state(lua_State *L)
{
    fd_generator *g = luaL_checkudata(L, 1, GENERATOR_MT);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)g->seed);
    lua_setfield(L, -2, "seed");
    lua_pushinteger(L, (lua_Integer)g->offset);
    lua_setfield(L, -2, "offset");
    return 1;
}

static int g_set_state(lua_State *L)
{
    fd_generator *g = luaL_checkudata(L, 1, GENERATOR_MT);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "seed");
    lua_getfield(L, 2, "offset");
    int ok1, ok2;
    lua_Integer seed = lua_tointegerx(L, -2, &ok1), offset = lua_tointegerx(L, -1, &ok2);
    if (!ok1 || !ok2) return luaL_argerror(L, 2, "state table needs integer fields seed and offset");
    g->seed = (uint64_t)seed;
    g->offset = (uint64_t)offset;
    lua_settop(L, 1);
    return 1;
}

static int g_tostring(lua_State *L)
{
    fd_generator *g = luaL_checkudata(L, 1, GENERATOR_MT);
    lua_pushfstring(L, "Generator(seed=%I, offset=%I)", (lua_Integer)g->seed, (lua_Integer)g->offset);
    return 1;
}

static int f_manual_seed(lua_State *L)
{
    fd_generator *g = default_generator(L);
    g->seed = (uint64_t)luaL_checkinteger(L, 1);
    g->offset = 0;
    return 0;
}

/* fada.rand(shape..., [dtype], [generator]) -> uniform [0, 1) */
static int make_random(lua_State *L, int kind)
{
    int64_t shape[FD_MAX_DIMS];
    int after;
    int ndim = fd_lua_checkshape(L, 1, shape, &after);
    fd_dtype dt = find_dtype(L, after, FD_F32);
    fd_generator *g = find_generator(L, after);
    fd_tensor *t = fd_lua_newtensor(L);
    if (fd_tensor_empty(t, dt, ndim, shape)) return fd_lua_error(L);
    int rc = kind ? fd_rand_normal_(t, g, 0, 1) : fd_rand_uniform_(t, g, 0, 1);
    if (rc) return fd_lua_error(L);
    return 1;
}
static int f_rand(lua_State *L) { return make_random(L, 0); }
static int f_randn(lua_State *L) { return make_random(L, 1); }

/* fada.randint(low, high, shape..., [dtype = i64], [generator]): [low, high) */
static int f_randint(lua_State *L)
{
    lua_Integer low = luaL_checkinteger(L, 1), high = luaL_checkinteger(L, 2);
    int64_t shape[FD_MAX_DIMS];
    int after;
    int ndim = fd_lua_checkshape(L, 3, shape, &after);
    fd_dtype dt = find_dtype(L, after, FD_I64);
    fd_generator *g = find_generator(L, after);
    fd_tensor *t = fd_lua_newtensor(L);
    if (fd_tensor_empty(t, dt, ndim, shape)) return fd_lua_error(L);
    if (fd_rand_int_(t, g, low, high)) return fd_lua_error(L);
    return 1;
}

/* t:uniform_([low = 0, high = 1], [generator]) */
static int m_uniform_(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    double lo = luaL_optnumber(L, 2, 0), hi = luaL_optnumber(L, 3, 1);
    if (fd_rand_uniform_(t, find_generator(L, 2), lo, hi)) return fd_lua_error(L);
    lua_settop(L, 1);
    return 1;
}

/* t:normal_([mean = 0, std = 1], [generator]) */
static int m_normal_(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    double mean = luaL_optnumber(L, 2, 0), std = luaL_optnumber(L, 3, 1);
    if (fd_rand_normal_(t, find_generator(L, 2), mean, std)) return fd_lua_error(L);
    lua_settop(L, 1);
    return 1;
}

void fd_open_random(lua_State *L, const fd_lua_tables *tb)
{
    static const luaL_Reg gen_methods[] = {
        {"manual_seed", g_manual_seed}, {"seed", g_seed}, {"get_state", g_get_state},
        {"set_state", g_set_state},     {NULL, NULL},
    };
    if (luaL_newmetatable(L, GENERATOR_MT)) {
        lua_newtable(L);
        fd_lua_setfuncs(L, -1, gen_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, g_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "Generator");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_GENERATOR_KEY);
    if (lua_isnil(L, -1)) {
        push_generator(L, 0x5eedfada);
        lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_GENERATOR_KEY);
    }
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_GENERATOR_KEY);
    lua_setfield(L, tb->fada, "default_generator");

    static const luaL_Reg fns[] = {
        {"Generator", f_generator}, {"manual_seed", f_manual_seed}, {"rand", f_rand},
        {"randn", f_randn},         {"randint", f_randint},         {NULL, NULL},
    };
    static const luaL_Reg methods[] = {{"uniform_", m_uniform_}, {"normal_", m_normal_}, {NULL, NULL}};
    fd_lua_setfuncs(L, tb->fada, fns);
    fd_lua_setfuncs(L, tb->methods, methods);
}
