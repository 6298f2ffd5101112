/* The fadalua program's two halves: the command line (main.c) and the
 * interactive loop with readline (main_repl.c). Both live only in the
 * executable, never in fada_core, so fada.so does not need libreadline. */
#ifndef FD_MAIN_REPL_H
#define FD_MAIN_REPL_H

#include <lua.h>

/* Calls the function below its narg arguments with a message handler that
 * adds a traceback; Ctrl-C while it runs stops it with "interrupted!". */
int fd_main_docall(lua_State *L, int narg, int nres);

/* When status is an error, prints the message on the top of the stack to
 * stderr (prefixed by the program name outside the REPL) and pops it. */
int fd_main_report(lua_State *L, int status);

/* Prints msg to stderr, prefixed by the program name outside the REPL. */
void fd_main_message(const char *msg);

/* Within the REPL errors print without the "fadalua: " prefix, as lua does. */
void fd_main_set_progname(const char *name);

/* The read-eval-print loop; returns at end of input. */
void fd_repl_run(lua_State *L);

#endif
