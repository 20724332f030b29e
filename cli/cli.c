/* Shared CLI plumbing: errors, exit codes, atomic outputs, progress. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static char cmdline[8192];

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "qtool %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return QT_EXIT_BAD_INPUT;
}

int cli_exit_code(enum qt_status st)
{
	if (st == QT_OK)
		return QT_EXIT_OK;
	return st == QT_E_NOMEM ? QT_EXIT_FAIL : QT_EXIT_BAD_INPUT;
}

int cli_status_error(const char *cmd, enum qt_status st)
{
	const char *m = qt_error_msg();
	fprintf(stderr, "qtool %s: %s\n", cmd, m[0] ? m : qt_status_str(st));
	return cli_exit_code(st);
}

int cli_out_is_stdout(const char *path)
{
	return !strcmp(path, "-") || !strcmp(path, "/dev/stdout") || !strcmp(path, "/dev/fd/1") ||
	       !strcmp(path, "/proc/self/fd/1");
}

/* Folder of path (for the writability check and the temporary file). */
static void dir_of(const char *path, char *buf, size_t cap)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(buf, cap, ".");
	else if (slash == path)
		snprintf(buf, cap, "/");
	else
		snprintf(buf, cap, "%.*s", (int)(slash - path), path);
}

/* Where the temporary file goes: the resolved target for a symbolic link
 * (renaming over the link would replace the link itself), else path. */
static void final_path(const char *path, char *buf, size_t cap)
{
	struct stat sl;
	char *real = NULL;
	if (lstat(path, &sl) == 0 && S_ISLNK(sl.st_mode))
		real = realpath(path, NULL);
	snprintf(buf, cap, "%s", real ? real : path);
	free(real);
}

enum qt_status cli_out_check(const char *path, const char *const *inputs, int n)
{
	if (!path[0])
		return qt_error(QT_E_INVALID_ARG, "an empty output file name");
	if (cli_out_is_stdout(path))
		return QT_OK;
	enum qt_status st = cli_check_not_input(path, inputs, n);
	if (st)
		return st;
	struct stat sb;
	if (stat(path, &sb) == 0) {
		if (S_ISDIR(sb.st_mode))
			return qt_error(QT_E_INVALID_ARG, "%s: is a folder, not a file", path);
		if (!S_ISREG(sb.st_mode)) {
			if (access(path, W_OK) != 0)
				return qt_error(QT_E_IO, "%s: cannot write: %s", path, strerror(errno));
			return QT_OK;
		}
	}
	char fin[4096], dir[4096];
	final_path(path, fin, sizeof fin);
	dir_of(fin, dir, sizeof dir);
	if (access(dir, W_OK) != 0)
		return qt_error(QT_E_IO, "%s: cannot write into folder %s: %s", path, dir, strerror(errno));
	return QT_OK;
}

enum qt_status cli_out_open(struct cli_out *o, const char *path)
{
	memset(o, 0, sizeof *o);
	if (strlen(path) + 16 >= sizeof o->tmp)
		return qt_error(QT_E_INVALID_ARG, "%s: path too long", path);
	snprintf(o->path, sizeof o->path, "%s", path);
	if (cli_out_is_stdout(path)) {
		fflush(stdout);
		o->kind = CLI_OUT_STDOUT;
		o->f = stdout;
		return QT_OK;
	}
	struct stat sb;
	if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
		/* A device or FIFO: renaming over it would replace the node itself. */
		o->kind = CLI_OUT_INPLACE;
		o->f = fopen(path, "wb");
		if (!o->f)
			return qt_error(QT_E_IO, "%s: cannot open: %s", path, strerror(errno));
		return QT_OK;
	}
	char fin[4096];
	final_path(path, fin, sizeof fin);
	if (strlen(fin) + 16 >= sizeof o->tmp)
		return qt_error(QT_E_INVALID_ARG, "%s: path too long", fin);
	snprintf(o->tmp, sizeof o->tmp, "%s.tmp.XXXXXX", fin);
	snprintf(o->path, sizeof o->path, "%s", fin);
	int fd = mkstemp(o->tmp);
	if (fd < 0) {
		o->tmp[0] = '\0';
		return qt_error(QT_E_IO, "%s: cannot create: %s", path, strerror(errno));
	}
	o->f = fdopen(fd, "wb");
	if (!o->f) {
		close(fd);
		unlink(o->tmp);
		o->tmp[0] = '\0';
		return qt_error(QT_E_IO, "%s: cannot open: %s", path, strerror(errno));
	}
	return QT_OK;
}

enum qt_status cli_out_commit(struct cli_out *o)
{
	int bad = fflush(o->f) != 0 || ferror(o->f);
	if (o->kind == CLI_OUT_STDOUT) {
		o->f = NULL;
		return bad ? qt_error(QT_E_IO, "standard output: write failed") : QT_OK;
	}
	if (o->kind == CLI_OUT_FILE && !bad && fsync(fileno(o->f)) != 0)
		bad = 1;
	if (fclose(o->f) != 0)
		bad = 1;
	o->f = NULL;
	if (o->kind == CLI_OUT_INPLACE)
		return bad ? qt_error(QT_E_IO, "%s: write failed", o->path) : QT_OK;
	if (bad) {
		unlink(o->tmp);
		return qt_error(QT_E_IO, "%s: write failed", o->path);
	}
	/* mkstemp creates 0600; outputs are ordinary files. */
	chmod(o->tmp, 0644);
	if (rename(o->tmp, o->path) != 0) {
		int e = errno;
		unlink(o->tmp);
		return qt_error(QT_E_IO, "%s: cannot rename into place: %s", o->path, strerror(e));
	}
	return QT_OK;
}

void cli_out_abort(struct cli_out *o)
{
	if (o->f && o->kind != CLI_OUT_STDOUT)
		fclose(o->f);
	o->f = NULL;
	if (o->kind == CLI_OUT_FILE && o->tmp[0])
		unlink(o->tmp);
}

enum qt_status cli_out_write_all(const char *path, const void *buf, size_t len)
{
	struct cli_out o;
	enum qt_status st = cli_out_open(&o, path);
	if (st)
		return st;
	if (len && fwrite(buf, 1, len, o.f) != len) {
		cli_out_abort(&o);
		return qt_error(QT_E_IO, "%s: write failed", path);
	}
	return cli_out_commit(&o);
}

enum qt_status cli_check_not_input(const char *out, const char *const *inputs, int n)
{
	struct stat so, si;
	if (stat(out, &so) != 0)
		return QT_OK;
	for (int i = 0; i < n; i++)
		if (inputs[i] && stat(inputs[i], &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
			return qt_error(QT_E_INVALID_ARG, "%s: output would overwrite the input %s", out, inputs[i]);
	return QT_OK;
}

/* Append arg to the command line, in single quotes when the shell would split or expand it. */
static size_t append_arg(size_t o, const char *arg)
{
	int plain = arg[0] != '\0';
	for (const char *p = arg; *p && plain; p++)
		plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%", *p) != NULL;
	if (o && o < sizeof cmdline)
		o += (size_t)snprintf(cmdline + o, sizeof cmdline - o, " ");
	if (plain) {
		if (o < sizeof cmdline)
			o += (size_t)snprintf(cmdline + o, sizeof cmdline - o, "%s", arg);
		return o;
	}
	if (o < sizeof cmdline)
		o += (size_t)snprintf(cmdline + o, sizeof cmdline - o, "'");
	for (const char *p = arg; *p && o < sizeof cmdline; p++)
		o += (size_t)snprintf(cmdline + o, sizeof cmdline - o, *p == '\'' ? "'\\''" : "%c", *p);
	if (o < sizeof cmdline)
		o += (size_t)snprintf(cmdline + o, sizeof cmdline - o, "'");
	return o;
}

/* The program is recorded as "qtool", not argv[0]: an absolute path of the
 * binary says where it was installed, which is not provenance and differs
 * between machines running the same command. */
void cli_set_command_line(int argc, char **argv)
{
	size_t o = 0;
	cmdline[0] = '\0';
	o = append_arg(o, "qtool");
	for (int i = 1; i < argc && o < sizeof cmdline; i++)
		o = append_arg(o, argv[i]);
}

const char *cli_command_line(void)
{
	return cmdline;
}

int cli_parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	if (!s || !*s)
		return -1;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	if (!s || !*s)
		return -1;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

int cli_stderr_is_tty(void)
{
	return isatty(2);
}

static int progress_shown;

void cli_progress(const char *what, long done, long total)
{
	if (!cli_stderr_is_tty() || total <= 0)
		return;
	int width = 30, fill = (int)((double)done / (double)total * width);
	char bar[64];
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr, "\r%s [%s] %ld/%ld", what, bar, done, total);
	fflush(stderr);
	progress_shown = 1;
}

void cli_progress_end(void)
{
	if (progress_shown)
		fputs("\r\033[K", stderr);
	progress_shown = 0;
}

/* The option of opts that arg (before any '=') names, or NULL. */
static const struct cli_opt *find_opt(const struct cli_opt *opts, const char *arg, size_t len)
{
	for (const struct cli_opt *p = opts; p->name; p++)
		if ((strlen(p->name) == len && !strncmp(p->name, arg, len)) ||
		    (p->alias && strlen(p->alias) == len && !strncmp(p->alias, arg, len)))
			return p;
	return NULL;
}

int cli_parse_args(const char *cmd, const char *help, int argc, char **argv, const struct cli_opt *opts,
		   const char **pos, int max_pos, int *n_pos)
{
	*n_pos = 0;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(help, stdout);
			return QT_EXIT_OK;
		}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || !a[1]) {
			if (*n_pos == max_pos)
				return cli_usage_error(cmd, "unexpected argument '%s' (see 'qtool %s --help')", a, cmd);
			pos[(*n_pos)++] = a;
			continue;
		}
		const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
		size_t len = eq ? (size_t)(eq - a) : strlen(a);
		const struct cli_opt *o = find_opt(opts, a, len);
		if (!o)
			return cli_usage_error(cmd, "unknown option '%.*s' (see 'qtool %s --help')", (int)len, a, cmd);
		if (o->flag) {
			if (eq)
				return cli_usage_error(cmd, "%s takes no value", o->name);
			if (*o->flag)
				return cli_usage_error(cmd, "%s is given twice", o->name);
			*o->flag = 1;
			continue;
		}
		const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
		if (!v)
			return cli_usage_error(cmd, "%s needs a value (see 'qtool %s --help')", o->name, cmd);
		if (o->list) {
			if (*o->n_list == o->cap)
				return cli_usage_error(cmd, "%s is given more than %d times", o->name, o->cap);
			o->list[(*o->n_list)++] = v;
		} else {
			if (*o->value)
				return cli_usage_error(cmd, "%s is given twice ('%s' and '%s')", o->name, *o->value, v);
			*o->value = v;
		}
	}
	return -1;
}

int cli_opt_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
	if (!s)
		return -1;
	if (cli_parse_long(s, lo, hi, out))
		return cli_usage_error(cmd, "%s needs an integer in %ld..%ld, not '%s'", opt, lo, hi, s);
	return -1;
}

int cli_check_env(void)
{
	const char *e = getenv("QT_THREADS");
	long n;
	if (e && cli_parse_long(e, 1, 1024, &n)) {
		fprintf(stderr, "qtool: QT_THREADS='%s' must be an integer in 1..1024 (the runtime uses at most 16)\n", e);
		return QT_EXIT_BAD_INPUT;
	}
	return -1;
}
