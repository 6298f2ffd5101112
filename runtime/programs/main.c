/* fadalua: the command line of Lua's own `lua` program, with the module
 * `fada` preloaded and set as a global. Options are handled in the order lua
 * handles them: -W, LUA_INIT, then -e/-l from left to right, then the script
 * with its arguments, then the REPL (main_repl.c) when asked for or when
 * there is nothing else to do and stdin is a terminal. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "runtime/programs/main_repl.h"

int luaopen_fada(lua_State *L);

static const char *progname = "fadalua";

/* ---- messages --------------------------------------------------------- */

void fd_main_set_progname(const char *name)
{
    progname = name;
}

void fd_main_message(const char *msg)
{
    if (progname) fprintf(stderr, "%s: ", progname);
    fprintf(stderr, "%s\n", msg);
    fflush(stderr);
}

int fd_main_report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        fd_main_message(msg ? msg : "(error object is not a string)");
        lua_pop(L, 1);
    }
    return status;
}

static void print_usage(const char *badoption)
{
    if (badoption) {
        if (badoption[1] == 'e' || badoption[1] == 'l')
            fprintf(stderr, "%s: '%s' needs an argument\n", progname, badoption);
        else
            fprintf(stderr, "%s: unrecognized option '%s'\n", progname, badoption);
    }
    FILE *f = badoption ? stderr : stdout;
    fprintf(f,
            "usage: fadalua [options] [script [args]]\n"
            "Available options are:\n"
            "  -e chunk   run the string 'chunk'\n"
            "  -i         enter the REPL after running 'script'\n"
            "  -l mod     require library 'mod' into global 'mod'\n"
            "  -l g=mod   require library 'mod' into global 'g'\n"
            "  -v         show versions: fadalua, Lua, oneDNN, OpenBLAS, FFmpeg, CPU and kernels\n"
            "  -E         ignore the environment variables LUA_INIT_5_4 and LUA_INIT\n"
            "  -W         turn warnings on\n"
            "  -h, --help show this help\n"
            "  --         stop handling options\n"
            "  -          stop handling options and run stdin\n"
            "With neither a script nor -e/-v: the REPL when stdin is a terminal,\n"
            "otherwise stdin is run as a script. The module 'fada' is the global 'fada'.\n");
    fflush(f);
}

/* ---- running chunks: traceback and Ctrl-C ------------------------------ */

/* The message handler: a traceback under the message. An error object
 * that is not a string is shown through its __tostring when it has one
 * (lua itself drops the traceback then; we keep it). */
static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* A signal handler may not touch the Lua state beyond lua_sethook (which is
 * async-signal-safe by design): the hook then raises the error at the next
 * Lua instruction, from within the interpreter. */
static lua_State *running;

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

static void on_sigint(int sig)
{
    signal(sig, SIG_DFL); /* a second Ctrl-C before the hook runs ends the process */
    lua_sethook(running, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

int fd_main_docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    running = L;
    struct sigaction act = {0}, old;
    act.sa_handler = on_sigint;
    sigemptyset(&act.sa_mask);
    sigaction(SIGINT, &act, &old);
    /* the REPL blocks SIGINT between chunks; a running chunk takes it */
    sigset_t sigint, mask;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    sigprocmask(SIG_UNBLOCK, &sigint, &mask);
    int status = lua_pcall(L, narg, nres, base);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    sigaction(SIGINT, &old, NULL);
    /* a Ctrl-C that came as the chunk ended must not stop the next one */
    if (lua_gethook(L) == stop_hook) lua_sethook(L, NULL, 0, 0);
    lua_remove(L, base);
    return status;
}

static int dochunk(lua_State *L, int status)
{
    if (status == LUA_OK) status = fd_main_docall(L, 0, 0);
    return fd_main_report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name)
{
    return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod, -l g=mod: global g (or mod, up to a '-' version mark) = require(mod) */
static int dolibrary(lua_State *L, const char *spec)
{
    const char *eq = strchr(spec, '=');
    const char *mod = eq ? eq + 1 : spec;
    size_t glen = eq ? (size_t)(eq - spec) : strcspn(spec, "-");
    lua_getglobal(L, "require");
    lua_pushstring(L, mod);
    int status = fd_main_docall(L, 1, 1);
    if (status == LUA_OK) {
        lua_pushlstring(L, spec, glen);
        lua_insert(L, -2);
        lua_setglobal(L, lua_tostring(L, -2));
        lua_pop(L, 1);
    }
    return fd_main_report(L, status);
}

/* ---- the command line --------------------------------------------------- */

enum { HAS_ERROR = 1, HAS_I = 2, HAS_V = 4, HAS_E = 8, HAS_NOENV = 16, HAS_W = 32, HAS_HELP = 64 };

/* Scans the options before the script. *script is the index of the script
 * in argv (argc when there is none); on an error, the bad option. */
static int collect_args(char **argv, int argc, int *script)
{
    int args = 0;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        *script = i;
        if (a[0] != '-') return args; /* the script */
        switch (a[1]) {
        case '\0': return args;       /* "-": the script is stdin */
        case '-':
            if (a[2] == '\0') {       /* "--": the next argument is the script */
                *script = i + 1;
                return args;
            }
            if (strcmp(a, "--help") == 0) {
                args |= HAS_HELP;
                break;
            }
            return HAS_ERROR;
        case 'E':
        case 'W':
        case 'i':
        case 'v':
        case 'h':
            if (a[2] != '\0') return HAS_ERROR;
            args |= a[1] == 'E' ? HAS_NOENV : a[1] == 'W' ? HAS_W : a[1] == 'i' ? HAS_I : a[1] == 'v' ? HAS_V : HAS_HELP;
            break;
        case 'e':
        case 'l':
            if (a[1] == 'e') args |= HAS_E;
            if (a[2] == '\0') { /* the argument is the next word */
                i++;
                if (i >= argc || argv[i][0] == '-') return HAS_ERROR;
            }
            break;
        default: return HAS_ERROR;
        }
    }
    *script = argc;
    return args;
}

/* Runs -e and -l in order. Returns 0 when one of them failed. */
static int run_args(lua_State *L, char **argv, int script)
{
    for (int i = 1; i < script; i++) {
        char opt = argv[i][1];
        if (opt != 'e' && opt != 'l') continue;
        const char *extra = argv[i][2] ? argv[i] + 2 : argv[++i];
        int status = opt == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
        if (status != LUA_OK) return 0;
    }
    return 1;
}

/* arg[0] = the script, arg[1..] its arguments, arg[-k] what came before it
 * (the interpreter and its options). Without a script, arg[0] = argv[0]. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script)
{
    if (script == argc) script = 0;
    lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int push_script_args(lua_State *L)
{
    if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
    int n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    return n;
}

static int handle_script(lua_State *L, char **argv, int script)
{
    const char *fname = argv[script];
    if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0) fname = NULL; /* stdin */
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
        int n = push_script_args(L);
        status = fd_main_docall(L, n, LUA_MULTRET);
    }
    return fd_main_report(L, status);
}

/* LUA_INIT_5_4 or LUA_INIT: "@file" runs a file, anything else is a chunk. */
static int handle_luainit(lua_State *L)
{
    const char *name = "=LUA_INIT_5_4";
    const char *init = getenv(name + 1);
    if (!init) {
        name = "=LUA_INIT";
        init = getenv(name + 1);
    }
    if (!init) return LUA_OK;
    if (init[0] == '@') return dochunk(L, luaL_loadfile(L, init + 1));
    return dostring(L, init, name);
}

/* fada.versions() with Lua's own line after the first (fadalua's). */
static void print_versions(lua_State *L)
{
    lua_getglobal(L, "fada");
    lua_getfield(L, -1, "versions");
    lua_call(L, 0, 1);
    const char *v = lua_tostring(L, -1);
    const char *nl = v ? strchr(v, '\n') : NULL;
    if (nl) {
        fwrite(v, 1, (size_t)(nl - v + 1), stdout);
        printf("%s\n%s", LUA_COPYRIGHT, nl + 1);
    } else {
        printf("%s\n%s\n", v ? v : "", LUA_COPYRIGHT);
    }
    fflush(stdout);
    lua_pop(L, 2);
}

/* require 'fada' into the global fada; then the REPL's layer, fada.help (it
 * sets fada.help; the core's registry, fada.doc, loads with fada), as the
 * global help */
static int open_fada(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_fada);
    lua_setfield(L, -2, "fada");
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "fada");
    int status = fd_main_docall(L, 1, 1);
    if (status != LUA_OK) return fd_main_report(L, status);
    lua_setglobal(L, "fada");
    lua_getglobal(L, "require");
    lua_pushliteral(L, "fada.help");
    status = fd_main_docall(L, 1, 1);
    if (status != LUA_OK) return fd_main_report(L, status);
    lua_getfield(L, -1, "help");
    lua_setglobal(L, "help");
    lua_pop(L, 1);
    return LUA_OK;
}

/* Everything runs inside this protected function, so that even a memory
 * error while setting up is reported rather than aborting. */
static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    int script = argc;
    int args = collect_args(argv, argc, &script);
    luaL_checkversion(L);
    if (args == HAS_ERROR) {
        print_usage(argv[script]);
        return 0;
    }
    if (args & HAS_HELP) {
        print_usage(NULL);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (args & HAS_NOENV) { /* as lua does: libraries ignore LUA_PATH etc. too */
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    create_arg_table(L, argv, argc, script);
    if (open_fada(L) != LUA_OK) return 0;
    lua_gc(L, LUA_GCRESTART);
    lua_gc(L, LUA_GCGEN, 0, 0);
    if (args & HAS_V) print_versions(L);
    if (args & HAS_W) lua_warning(L, "@on", 0);
    if (!(args & HAS_NOENV) && handle_luainit(L) != LUA_OK) return 0;
    if (!run_args(L, argv, script)) return 0;
    if (script < argc && handle_script(L, argv, script) != LUA_OK) return 0;
    if (args & HAS_I) {
        fd_repl_run(L);
    } else if (script == argc && !(args & (HAS_E | HAS_V))) {
        if (isatty(STDIN_FILENO))
            fd_repl_run(L);
        else if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK)
            return 0;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        fd_main_message("cannot create a Lua state: not enough memory");
        return EXIT_FAILURE;
    }
    lua_gc(L, LUA_GCSTOP); /* no collections while setting up */
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = lua_toboolean(L, -1);
    fd_main_report(L, status);
    lua_close(L);
    return ok && status == LUA_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}
