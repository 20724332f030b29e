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

enum qt_status cli_out_open(struct cli_out *o, const char *path)
{
	memset(o, 0, sizeof *o);
	if (strlen(path) + 16 >= sizeof o->tmp)
		return qt_error(QT_E_INVALID_ARG, "%s: path too long", path);
	snprintf(o->path, sizeof o->path, "%s", path);
	snprintf(o->tmp, sizeof o->tmp, "%s.tmp.XXXXXX", path);
	int fd = mkstemp(o->tmp);
	if (fd < 0)
		return qt_error(QT_E_IO, "%s: cannot create: %s", path, strerror(errno));
	o->f = fdopen(fd, "wb");
	if (!o->f) {
		close(fd);
		unlink(o->tmp);
		return qt_error(QT_E_IO, "%s: cannot open: %s", path, strerror(errno));
	}
	return QT_OK;
}

enum qt_status cli_out_commit(struct cli_out *o)
{
	int bad = ferror(o->f);
	if (fclose(o->f) != 0)
		bad = 1;
	o->f = NULL;
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
	if (o->f)
		fclose(o->f);
	o->f = NULL;
	if (o->tmp[0])
		unlink(o->tmp);
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

void cli_set_command_line(int argc, char **argv)
{
	size_t o = 0;
	cmdline[0] = '\0';
	for (int i = 0; i < argc && o < sizeof cmdline; i++)
		o += (size_t)snprintf(cmdline + o, sizeof cmdline - o, "%s%s", i ? " " : "", argv[i]);
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
