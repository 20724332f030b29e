/* Error messages: one thread-local buffer, written by qt_error(). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qtool/qtool.h"

#define QT_ERR_CAP 1024

static _Thread_local char err_buf[QT_ERR_CAP];

const char *qt_status_str(enum qt_status st)
{
	switch (st) {
	case QT_OK: return "ok";
	case QT_E_INVALID_ARG: return "invalid argument";
	case QT_E_UNSUPPORTED: return "unsupported";
	case QT_E_FORMAT: return "format error";
	case QT_E_IO: return "I/O error";
	case QT_E_NOMEM: return "out of memory";
	case QT_E_NUMERIC: return "numeric error";
	}
	return "unknown status";
}

const char *qt_error_msg(void)
{
	return err_buf;
}

void qt_error_clear(void)
{
	err_buf[0] = '\0';
}

enum qt_status qt_error(enum qt_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof err_buf, fmt, ap);
	va_end(ap);
	return st;
}

enum qt_status qt_error_prefix(enum qt_status st, const char *fmt, ...)
{
	char prefix[QT_ERR_CAP], old[QT_ERR_CAP];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, err_buf, sizeof old);
	if (old[0])
		snprintf(err_buf, sizeof err_buf, "%s: %s", prefix, old);
	else
		snprintf(err_buf, sizeof err_buf, "%s: %s", prefix, qt_status_str(st));
	return st;
}
