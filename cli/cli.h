/*
 * Shared CLI plumbing. cli/ is the only place that prints for users: errors go
 * to stderr as one line "qtool CMD: message", results to stdout.
 *
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input.
 */
#ifndef QT_CLI_H
#define QT_CLI_H

#include <stdio.h>

#include "qtool/qtool.h"

#define QT_EXIT_OK 0
#define QT_EXIT_FAIL 1
#define QT_EXIT_BAD_INPUT 2

/* Print "qtool CMD: <fmt>" to stderr and return QT_EXIT_BAD_INPUT. */
int cli_usage_error(const char *cmd, const char *fmt, ...) QT_PRINTF(2, 3);
/* Print "qtool CMD: <qt_error_msg()>" and return the exit code for st. */
int cli_status_error(const char *cmd, enum qt_status st);
/* Exit code for a status: out-of-memory is a runtime failure, the rest is input. */
int cli_exit_code(enum qt_status st);

/*
 * Atomic output: open a temporary file beside `path`; cli_commit renames it
 * over `path`, cli_abort removes it. Never leaves a half-written output.
 */
struct cli_out {
	FILE *f;
	char tmp[4096];
	char path[4096];
};
enum qt_status cli_out_open(struct cli_out *o, const char *path);
enum qt_status cli_out_commit(struct cli_out *o);
void cli_out_abort(struct cli_out *o);
/* Refuse to write an output over one of the inputs (compared by inode). */
enum qt_status cli_check_not_input(const char *out, const char *const *inputs, int n);

/* The whole command line as one string (for reports and provenance). Static buffer. */
const char *cli_command_line(void);
void cli_set_command_line(int argc, char **argv);

/* Parse a non-negative integer flag value; returns 0 on success. */
int cli_parse_long(const char *s, long lo, long hi, long *out);

/* 1 when stderr is a terminal (progress bars only then). */
int cli_stderr_is_tty(void);
/* Progress on stderr: a bar on a terminal, nothing otherwise (CI logs stay plain). */
void cli_progress(const char *what, long done, long total);
void cli_progress_end(void);

/* Subcommands. */
int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* inspect for .qmod files (cli/cmd_inspect_qmod.c). */
int cmd_inspect_qmod(const char *path, int json);

#endif
