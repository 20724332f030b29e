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
 * Outputs. A path names one of three kinds of destination:
 *   - "-" or /dev/stdout (also /dev/fd/1, /proc/self/fd/1): standard output,
 *     written directly (the command then prints its text on stderr);
 *   - an existing file that is not a regular file (a device, a FIFO):
 *     written in place, never replaced;
 *   - anything else: a temporary file beside the target (beside the resolved
 *     target for a symbolic link, so the link survives) that cli_out_commit
 *     renames over it and cli_out_abort removes. Never a half-written output.
 */
enum cli_out_kind { CLI_OUT_FILE, CLI_OUT_STDOUT, CLI_OUT_INPLACE };
struct cli_out {
	FILE *f;
	enum cli_out_kind kind;
	char tmp[4096];
	char path[4096];
};
/* 1 when path means standard output ("-", /dev/stdout, ...). */
int cli_out_is_stdout(const char *path);
/*
 * Check an output path before any work: not one of the inputs (by inode),
 * not a folder, and writable (the file itself when it is a device or FIFO,
 * else its folder). QT_E_INVALID_ARG or QT_E_IO with a message naming it.
 */
enum qt_status cli_out_check(const char *path, const char *const *inputs, int n);
enum qt_status cli_out_open(struct cli_out *o, const char *path);
enum qt_status cli_out_commit(struct cli_out *o);
void cli_out_abort(struct cli_out *o);
/* Write len bytes to path as one output (open, write, commit). */
enum qt_status cli_out_write_all(const char *path, const void *buf, size_t len);
/* Refuse to write an output over one of the inputs (compared by inode). */
enum qt_status cli_check_not_input(const char *out, const char *const *inputs, int n);

/*
 * Options of a command, for cli_parse_args; a table ends with a zero entry.
 * Exactly one of value, flag, list is set:
 *   value: "--name V" or "--name=V", given at most once (*value starts NULL);
 *   flag:  "--name" alone, at most once;
 *   list:  "--name V" repeatable, up to cap values, count in *n_list.
 */
struct cli_opt {
	const char *name;  /* "--data" */
	const char *alias; /* short form ("-o"), or NULL */
	const char **value;
	int *flag;
	const char **list;
	int *n_list;
	int cap;
};
/*
 * Parse argv[1..argc) of command `cmd`. Arguments that are not options go
 * to pos[0..max_pos) ("-" alone is positional). Returns -1 to go on; 0 after
 * printing `help` for --help/-h (anywhere on the line); QT_EXIT_BAD_INPUT
 * after one error line (unknown option, missing value, a value given to a
 * switch, an option given twice, too many arguments).
 */
int cli_parse_args(const char *cmd, const char *help, int argc, char **argv, const struct cli_opt *opts,
		   const char **pos, int max_pos, int *n_pos);
/* Convert option `opt`'s value s (NULL: keep *out) to an integer in lo..hi; returns -1 to go on, else
 * QT_EXIT_BAD_INPUT after one error line. */
int cli_opt_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);

/* The whole command line as one string (for reports and provenance). Static buffer. */
const char *cli_command_line(void);
void cli_set_command_line(int argc, char **argv);

/* Parse an integer in lo..hi; returns 0 on success. */
int cli_parse_long(const char *s, long lo, long hi, long *out);
/* The same for a finite double in [lo, hi]. */
int cli_parse_double(const char *s, double lo, double hi, double *out);

/* 1 when stderr is a terminal (progress bars only then). */
int cli_stderr_is_tty(void);
/* Progress on stderr: a bar on a terminal, nothing otherwise (CI logs stay plain). */
void cli_progress(const char *what, long done, long total);
void cli_progress_end(void);

/* Check the environment the library reads (QT_THREADS): returns -1 to go
 * on, else QT_EXIT_BAD_INPUT after one error line. */
int cli_check_env(void);

/* Subcommands. */
int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
/* inspect for .qmod files (cli/cmd_inspect_qmod.c). */
int cmd_inspect_qmod(const char *path, int json);

#endif
