/* The fadalua REPL: lua's read-eval-print loop (try "return <line>" first,
 * keep reading while the chunk is incomplete, print results with the global
 * print) plus readline: line editing, history in ~/.fadalua_history and tab
 * completion of globals and fields (lua/fada/complete.lua finds the words).
 * When stdin is not a terminal (fadalua -i < file) lines are read plainly. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lua.h>

#include "runtime/programs/main_repl.h"

#define HISTORY_FILE ".fadalua_history"
#define HISTORY_MAX 1000

/* What reading a line can end with, besides a line. */
enum { LINE_OK = 0, LINE_EOF = -1, LINE_INTERRUPTED = -2 };

static int use_readline;     /* stdin is a terminal */
static int eof_seen;         /* end of input inside a multi-line chunk */
static lua_State *repl_state; /* for the completion callbacks */

/* ---- history ---------------------------------------------------------- */

static char history_path[4096]; /* empty: keep history in memory only */

/* A missing or unwritable home directory only costs the persistence. */
static void history_open(void)
{
    using_history();
    stifle_history(HISTORY_MAX);
    const char *home = getenv("HOME");
    history_path[0] = '\0';
    if (!home || !home[0]) return;
    if ((size_t)snprintf(history_path, sizeof history_path, "%s/%s", home, HISTORY_FILE) >= sizeof history_path) {
        history_path[0] = '\0';
        return;
    }
    int err = read_history(history_path);
    if (err == ENOENT) err = write_history(history_path); /* create it, so append_history works */
    if (err || access(history_path, W_OK) != 0) history_path[0] = '\0';
}

static void history_add(const char *line)
{
    if (!line[0]) return;
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last && strcmp(last->line, line) == 0) return; /* no runs of the same line */
    add_history(line);
    if (history_path[0] && append_history(1, history_path) != 0) history_path[0] = '\0';
}

static void history_close(void)
{
    if (history_path[0]) history_truncate_file(history_path, HISTORY_MAX);
}

/* ---- completion ------------------------------------------------------- */

/* The candidates of the last completion: a Lua array in the registry. */
static int completion_ref = LUA_NOREF;
static lua_Integer completion_next;

/* require('fada.complete').candidates(word) */
static int push_candidates(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "fada.complete");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "candidates");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

static char *completion_generator(const char *text, int state)
{
    (void)text;
    lua_State *L = repl_state;
    if (state == 0) completion_next = 1;
    if (completion_ref == LUA_NOREF) return NULL;
    char *word = NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, completion_ref);
    if (lua_rawgeti(L, -1, completion_next) == LUA_TSTRING) {
        word = strdup(lua_tostring(L, -1)); /* readline frees it */
        completion_next++;
    }
    lua_pop(L, 2);
    return word;
}

/* Lists matches by their last part ("zeros  zeros_like", not the whole
 * "fada.zeros  fada.zeros_like"), as a shell lists file names. */
static void display_matches(char **matches, int n, int max_length)
{
    (void)max_length;
    char **parts = calloc((size_t)n + 2, sizeof *parts);
    if (!parts) return;
    int longest = 0;
    for (int i = 0; i <= n; i++) {
        const char *cut = strrchr(matches[i], '.');
        const char *colon = strrchr(matches[i], ':');
        if (colon > cut) cut = colon;
        parts[i] = (char *)(cut && i > 0 ? cut + 1 : matches[i]);
        int len = (int)strlen(parts[i]);
        if (i > 0 && len > longest) longest = len;
    }
    rl_display_match_list(parts, n, longest);
    rl_forced_update_display();
    free(parts);
}

/* `text` is the word before the cursor; '.' and ':' are not word breaks,
 * so it is a whole path such as "fada.ze" or "t:si". */
static char **attempt_completion(const char *text, int start, int end)
{
    (void)start, (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    rl_completion_append_character = '\0';
    lua_State *L = repl_state;
    luaL_unref(L, LUA_REGISTRYINDEX, completion_ref);
    completion_ref = LUA_NOREF;
    int top = lua_gettop(L);
    lua_pushcfunction(L, push_candidates);
    lua_pushstring(L, text);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) completion_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, top);
    return rl_completion_matches(text, completion_generator);
}

/* ---- reading lines ---------------------------------------------------- */

static char *callback_line;
static int callback_done;
static volatile sig_atomic_t prompt_interrupted;

static void on_line(char *line)
{
    callback_line = line;
    callback_done = 1;
    rl_callback_handler_remove();
}

static volatile sig_atomic_t prompt_resized;

static void on_prompt_signal(int sig)
{
    if (sig == SIGINT) prompt_interrupted = 1;
    else prompt_resized = 1;
}

/* readline through its callback interface, so that Ctrl-C at the prompt
 * can drop the line (and a pending multi-line chunk) cleanly instead of
 * ending the program. SIGINT and SIGWINCH are blocked except while waiting
 * in pselect, so they never land inside readline's own code (which in
 * callback mode only watches signals while it reads a character). */
static int read_line_tty(const char *prompt, char **out)
{
    sigset_t block, orig;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGWINCH);
    sigprocmask(SIG_BLOCK, &block, &orig);
    struct sigaction act = {0}, old_int, old_winch;
    act.sa_handler = on_prompt_signal; /* no SA_RESTART: pselect returns EINTR */
    sigemptyset(&act.sa_mask);
    sigaction(SIGINT, &act, &old_int);
    sigaction(SIGWINCH, &act, &old_winch);

    /* the REPL keeps SIGINT blocked between chunks (fd_repl_run): the wait
     * must let both through whatever the mask was */
    sigset_t waiting = orig;
    sigdelset(&waiting, SIGINT);
    sigdelset(&waiting, SIGWINCH);
    int in = fileno(rl_instream ? rl_instream : stdin);
    int result = LINE_OK;
    prompt_interrupted = 0;
    callback_done = 0;
    callback_line = NULL;
    rl_callback_handler_install(prompt, on_line);
    while (!callback_done) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(in, &fds);
        int r = pselect(in + 1, &fds, NULL, NULL, NULL, &waiting);
        if (prompt_interrupted) {
            /* "^C" before the removal: leaving bracketed-paste mode writes a
             * carriage return, and the prompt must stay visible */
            FILE *out = rl_outstream ? rl_outstream : stdout;
            fputs("^C", out);
            fflush(out);
            rl_callback_sigcleanup();
            rl_callback_handler_remove();
            fputs("\n", out);
            result = LINE_INTERRUPTED;
            break;
        }
        if (prompt_resized) {
            prompt_resized = 0;
            rl_resize_terminal();
        }
        if (r < 0) {
            if (errno == EINTR) continue;
            rl_callback_handler_remove();
            result = LINE_EOF;
            break;
        }
        rl_callback_read_char();
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGWINCH, &old_winch, NULL);
    sigprocmask(SIG_SETMASK, &orig, NULL);
    if (result == LINE_OK && !callback_line) result = LINE_EOF;
    if (result == LINE_OK) *out = callback_line;
    else free(callback_line);
    return result;
}

static int read_line_plain(const char *prompt, char **out)
{
    fputs(prompt, stdout);
    fflush(stdout);
    char *line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, stdin) < 0) {
        free(line);
        return LINE_EOF;
    }
    *out = line;
    return LINE_OK;
}

/* _PROMPT / _PROMPT2 when set, as lua does. */
static void get_prompt(lua_State *L, int first, char *buf, size_t n)
{
    lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
    const char *p = lua_tostring(L, -1);
    snprintf(buf, n, "%s", p ? p : first ? "> " : ">> ");
    lua_pop(L, 1);
}

/* Pushes the next line, without its newline. */
static int push_line(lua_State *L, int first)
{
    char prompt[256];
    get_prompt(L, first, prompt, sizeof prompt);
    char *line = NULL;
    int r = use_readline ? read_line_tty(prompt, &line) : read_line_plain(prompt, &line);
    if (r != LINE_OK) return r;
    size_t len = strlen(line);
    if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
    if (use_readline) history_add(line);
    lua_pushlstring(L, line, len);
    free(line);
    return LINE_OK;
}

/* ---- compiling -------------------------------------------------------- */

/* Stack: line. Tries "return <line>;" so that expressions print their
 * value; on success the stack is: line, function. */
static int add_return(lua_State *L)
{
    const char *retline = lua_pushfstring(L, "return %s;", lua_tostring(L, -1));
    int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
    if (status == LUA_OK)
        lua_remove(L, -2);
    else
        lua_pop(L, 2);
    return status;
}

/* A syntax error at "<eof>" means the chunk goes on in the next line. */
static int incomplete(lua_State *L, int status)
{
    if (status != LUA_ERRSYNTAX) return 0;
    size_t n;
    const char *msg = lua_tolstring(L, -1, &n);
    return n >= 5 && strcmp(msg + n - 5, "<eof>") == 0;
}

/* Stack: line. Reads continuation lines while the chunk is incomplete.
 * Ends with: chunk, function (or error message), or a LINE_* code. */
static int multi_line(lua_State *L)
{
    for (;;) {
        size_t len;
        const char *chunk = lua_tolstring(L, -1, &len);
        int status = luaL_loadbuffer(L, chunk, len, "=stdin");
        if (!incomplete(L, status)) return status;
        lua_pop(L, 1);
        int r = push_line(L, 0);
        if (r == LINE_INTERRUPTED) return r;
        if (r == LINE_EOF) { /* report the incomplete chunk's error, then quit */
            eof_seen = 1;
            chunk = lua_tolstring(L, -1, &len);
            return luaL_loadbuffer(L, chunk, len, "=stdin");
        }
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
}

/* Reads and compiles one chunk: on LUA_OK the function is at base + 1, on an
 * error the message; otherwise a LINE_* code and nothing is pushed. */
static int load_chunk(lua_State *L, int base)
{
    lua_settop(L, base);
    int r = push_line(L, 1);
    if (r != LINE_OK) return r;
    int status = add_return(L);
    if (status != LUA_OK) status = multi_line(L);
    if (status == LINE_INTERRUPTED || status == LINE_EOF) {
        lua_settop(L, base);
        return status;
    }
    lua_remove(L, base + 1); /* the source text */
    return status;
}

/* Results go to require('fada.show').repl_print (plain tables inline), or
 * to the global print when that is not there. */
static void print_results(lua_State *L, int base)
{
    int n = lua_gettop(L) - base;
    if (n <= 0) return;
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "fada.show");
    if (lua_istable(L, -1)) lua_getfield(L, -1, "repl_print");
    else lua_pushnil(L);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        lua_getglobal(L, "print");
    }
    lua_replace(L, -3);
    lua_pop(L, 1);
    lua_insert(L, base + 1);
    if (fd_main_docall(L, n, 0) != LUA_OK) /* so Ctrl-C stops a long print */
        fd_main_message(lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1)));
}

static void print_banner(lua_State *L)
{
    lua_getglobal(L, "fada");
    lua_getfield(L, -1, "version");
    const char *v = lua_tostring(L, -1);
    printf("fadalua %s (%s): help() for help, TAB completes, Ctrl-D quits\n", v ? v : "?", LUA_RELEASE);
    fflush(stdout);
    lua_pop(L, 2);
}

void fd_repl_run(lua_State *L)
{
    int base = lua_gettop(L);
    repl_state = L;
    use_readline = isatty(STDIN_FILENO);
    if (use_readline) {
        rl_readline_name = "fadalua"; /* for $if fadalua in ~/.inputrc */
        rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[)}";
        rl_completer_word_break_characters = rl_basic_word_break_characters;
        rl_attempted_completion_function = attempt_completion;
        rl_completion_display_matches_hook = display_matches;
        history_open();
        print_banner(L);
    }
    /* On a terminal a Ctrl-C typed while results print or history is saved
     * waits (blocked) for the next prompt or chunk instead of ending the
     * program: only the prompt and a running chunk let SIGINT through. */
    sigset_t sigint, before;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    if (use_readline) sigprocmask(SIG_BLOCK, &sigint, &before);
    fd_main_set_progname(NULL);
    eof_seen = 0;
    for (;;) {
        int status = load_chunk(L, base);
        if (status == LINE_EOF) break;
        if (status == LINE_INTERRUPTED) continue;
        if (status == LUA_OK) status = fd_main_docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK)
            print_results(L, base);
        else
            fd_main_report(L, status);
        if (eof_seen) break;
    }
    lua_settop(L, base);
    fputs("\n", stdout);
    fflush(stdout);
    fd_main_set_progname("fadalua");
    if (use_readline) {
        history_close();
        luaL_unref(L, LUA_REGISTRYINDEX, completion_ref);
        completion_ref = LUA_NOREF;
        /* a Ctrl-C still pending is dropped (ignoring discards it), so
         * leaving the REPL never ends the program by that signal */
        struct sigaction ignore = {0}, old;
        ignore.sa_handler = SIG_IGN;
        sigemptyset(&ignore.sa_mask);
        sigaction(SIGINT, &ignore, &old);
        sigprocmask(SIG_SETMASK, &before, NULL);
        sigaction(SIGINT, &old, NULL);
    }
}
