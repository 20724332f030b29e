/*
 * The sensitivity file (docs/SENSITIVITY.md): what `qtool analyze` measured,
 * cached so `quantize --target-size` can reuse it. Read as untrusted input:
 * every field is checked before use.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "qtool/bitalloc.h"
#include "quant/sens_int.h"

#define SENS_FORMAT "qtool-sensitivity"
#define SENS_VERSION 1
#define MAX_FILE_BYTES ((long)64 << 20)
#define MAX_LAYERS 100000
#define MAX_SETTINGS 16

static const char *gran_name(enum qt_granularity g)
{
	return g == QT_GRAN_TENSOR ? "tensor" : g == QT_GRAN_GROUP ? "group" : "channel";
}

enum qt_status qt_sens_to_json(const struct qt_sens *s, const char *model_path, char **json_out)
{
	*json_out = NULL;
	cJSON *root = cJSON_CreateObject();
	if (!root)
		return qt_error(QT_E_NOMEM, "out of memory");
	cJSON_AddStringToObject(root, "format", SENS_FORMAT);
	cJSON_AddNumberToObject(root, "version", SENS_VERSION);
	cJSON_AddStringToObject(root, "model", model_path ? model_path : "");
	cJSON_AddStringToObject(root, "model_sha256", s->model_sha256);
	cJSON_AddStringToObject(root, "data", s->data);
	cJSON_AddNumberToObject(root, "samples", (double)s->samples);
	cJSON_AddStringToObject(root, "loss", s->loss);
	cJSON_AddStringToObject(root, "granularity", gran_name(s->gran));
	cJSON_AddNumberToObject(root, "group_size", s->gran == QT_GRAN_GROUP ? s->group_size : 0);
	cJSON_AddBoolToObject(root, "full_range", s->wfull);
	cJSON_AddStringToObject(root, "methods", qt_methods_str(s->methods));
	cJSON *js = cJSON_AddArrayToObject(root, "settings"), *jl = cJSON_AddArrayToObject(root, "layers");
	char b[QT_SETTING_STR_MAX];
	for (int i = 0; js && i < s->n_settings; i++)
		cJSON_AddItemToArray(js, cJSON_CreateString(qt_bits_setting_str(&s->settings[i], b)));
	for (int l = 0; jl && l < s->n_layers; l++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", s->names[l]);
		cJSON_AddStringToObject(o, "op", s->ops[l] ? s->ops[l] : "");
		cJSON_AddNumberToObject(o, "params", (double)s->params[l]);
		cJSON_AddNumberToObject(o, "macs", (double)s->macs[l]);
		cJSON *c = cJSON_AddArrayToObject(o, "cost"), *by = cJSON_AddArrayToObject(o, "bytes");
		for (int k = 0; c && by && k < s->n_settings; k++) {
			/* %.17g: the cost reads back bit for bit (cJSON's own printing
			 * keeps 15 digits when they read back approximately). */
			char num[40];
			snprintf(num, sizeof num, "%.17g", s->cost[(size_t)l * s->n_settings + k]);
			cJSON_AddItemToArray(c, cJSON_CreateRaw(num));
			cJSON_AddItemToArray(by, cJSON_CreateNumber((double)s->bytes[(size_t)l * s->n_settings + k]));
		}
		/* Derived, for reports (the reader takes sqnr_db back, not share). */
		cJSON *q = cJSON_AddArrayToObject(o, "sqnr_db"), *sh = cJSON_AddArrayToObject(o, "share");
		cJSON *ns = cJSON_AddArrayToObject(o, "latency_ns");
		for (int k = 0; q && sh && ns && k < s->n_settings; k++) {
			double v = s->sqnr[(size_t)l * s->n_settings + k], tot = qt_sens_setting_total(s, k);
			int64_t t = s->ns[(size_t)l * s->n_settings + k];
			cJSON_AddItemToArray(ns, t >= 0 ? cJSON_CreateNumber((double)t) : cJSON_CreateNull());
			cJSON_AddItemToArray(q, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
			cJSON_AddItemToArray(sh, cJSON_CreateNumber(tot > 0 ? s->cost[(size_t)l * s->n_settings + k] / tot : 0));
		}
		cJSON_AddItemToArray(jl, o);
	}
	char *txt = js && jl ? cJSON_Print(root) : NULL;
	cJSON_Delete(root);
	if (!txt)
		return qt_error(QT_E_NOMEM, "out of memory writing the sensitivity file");
	*json_out = txt;
	return QT_OK;
}

double qt_sens_setting_total(const struct qt_sens *s, int k)
{
	double t = 0;
	for (int l = 0; l < s->n_layers; l++)
		t += s->cost[(size_t)l * s->n_settings + k];
	return t;
}

/* ---- Reading ---- */

#define BAD(...) qt_error(QT_E_FORMAT, __VA_ARGS__)

static const char *get_str(const cJSON *o, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* Integer field in [lo, hi]: 0 on success. */
static int get_int(const cJSON *j, int64_t lo, int64_t hi, int64_t *out)
{
	if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble != floor(j->valuedouble) ||
	    j->valuedouble < (double)lo || j->valuedouble > (double)hi)
		return -1;
	*out = (int64_t)j->valuedouble;
	return 0;
}

static char *slurp(const char *path, long *len_out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	long n = -1;
	if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && n <= MAX_FILE_BYTES && !fseek(f, 0, SEEK_SET) &&
	    (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n)
		buf[n] = 0;
	else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len_out = n;
	return buf;
}

/* One layer object: name, op, params, macs, and cost and bytes per setting. */
static enum qt_status read_layer(const char *path, const cJSON *o, int l, struct qt_sens *s)
{
	const char *name = get_str(o, "name"), *op = get_str(o, "op");
	int64_t v = 0;
	if (!cJSON_IsObject(o) || !name || !name[0] || strlen(name) > 4096)
		return BAD("%s: layers[%d]: \"name\" must be a non-empty string", path, l);
	if (!(s->names[l] = strdup(name)) || !(s->ops[l] = strdup(op ? op : "")))
		return qt_error(QT_E_NOMEM, "out of memory");
	if (get_int(cJSON_GetObjectItemCaseSensitive(o, "params"), 0, (int64_t)1 << 40, &s->params[l]))
		return BAD("%s: layer \"%s\": \"params\" must be an integer in [0, 2^40]", path, name);
	if (cJSON_GetObjectItemCaseSensitive(o, "macs") &&
	    get_int(cJSON_GetObjectItemCaseSensitive(o, "macs"), 0, (int64_t)1 << 50, &s->macs[l]))
		return BAD("%s: layer \"%s\": \"macs\" must be an integer in [0, 2^50]", path, name);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "cost"), *b = cJSON_GetObjectItemCaseSensitive(o, "bytes");
	if (!cJSON_IsArray(c) || !cJSON_IsArray(b) || cJSON_GetArraySize(c) != s->n_settings ||
	    cJSON_GetArraySize(b) != s->n_settings)
		return BAD("%s: layer \"%s\": \"cost\" and \"bytes\" must be arrays of %d numbers (one per setting)", path,
			   name, s->n_settings);
	for (int k = 0; k < s->n_settings; k++) {
		const cJSON *ck = cJSON_GetArrayItem(c, k);
		if (!cJSON_IsNumber(ck) || !isfinite(ck->valuedouble) || ck->valuedouble < 0)
			return BAD("%s: layer \"%s\": cost[%d] must be a finite number >= 0", path, name, k);
		s->cost[(size_t)l * s->n_settings + k] = ck->valuedouble;
		if (get_int(cJSON_GetArrayItem(b, k), 0, (int64_t)1 << 44, &v))
			return BAD("%s: layer \"%s\": bytes[%d] must be an integer in [0, 2^44]", path, name, k);
		s->bytes[(size_t)l * s->n_settings + k] = v;
	}
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "sqnr_db");
	if (q && (!cJSON_IsArray(q) || cJSON_GetArraySize(q) != s->n_settings))
		return BAD("%s: layer \"%s\": \"sqnr_db\" must be an array of %d numbers or nulls", path, name, s->n_settings);
	for (int k = 0; q && k < s->n_settings; k++) {
		const cJSON *qk = cJSON_GetArrayItem(q, k);
		if (!cJSON_IsNull(qk) && (!cJSON_IsNumber(qk) || !isfinite(qk->valuedouble)))
			return BAD("%s: layer \"%s\": sqnr_db[%d] must be a finite number or null", path, name, k);
		s->sqnr[(size_t)l * s->n_settings + k] = cJSON_IsNull(qk) ? NAN : qk->valuedouble;
	}
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "latency_ns");
	if (t && (!cJSON_IsArray(t) || cJSON_GetArraySize(t) != s->n_settings))
		return BAD("%s: layer \"%s\": \"latency_ns\" must be an array of %d integers or nulls", path, name,
			   s->n_settings);
	for (int k = 0; t && k < s->n_settings; k++) {
		const cJSON *tk = cJSON_GetArrayItem(t, k);
		if (!cJSON_IsNull(tk) && get_int(tk, 0, (int64_t)1 << 50, &v))
			return BAD("%s: layer \"%s\": latency_ns[%d] must be an integer in [0, 2^50] or null", path, name, k);
		s->ns[(size_t)l * s->n_settings + k] = cJSON_IsNull(tk) ? -1 : v;
	}
	for (int j = 0; j < l; j++)
		if (!strcmp(s->names[j], name))
			return BAD("%s: layer \"%s\" appears twice", path, name);
	return QT_OK;
}

static enum qt_status read_root(const char *path, const cJSON *root, struct qt_sens *s)
{
	const char *fmt = get_str(root, "format"), *loss = get_str(root, "loss"), *gran = get_str(root, "granularity");
	const char *sha = get_str(root, "model_sha256"), *meth = get_str(root, "methods"), *data = get_str(root, "data");
	int64_t v, gs = 0, samples = 0;
	if (!cJSON_IsObject(root) || !fmt || strcmp(fmt, SENS_FORMAT))
		return BAD("%s: not a sensitivity file (\"format\" must be \"%s\")", path, SENS_FORMAT);
	if (get_int(cJSON_GetObjectItemCaseSensitive(root, "version"), 0, 1000, &v) || v != SENS_VERSION)
		return BAD("%s: \"version\" must be %d", path, SENS_VERSION);
	if (!loss || (strcmp(loss, "kl") && strcmp(loss, "mse") && strcmp(loss, "hessian-proxy")))
		return BAD("%s: \"loss\" must be \"kl\", \"mse\" or \"hessian-proxy\"", path);
	if (!gran || (strcmp(gran, "channel") && strcmp(gran, "tensor") && strcmp(gran, "group")))
		return BAD("%s: \"granularity\" must be channel, tensor or group", path);
	if (get_int(cJSON_GetObjectItemCaseSensitive(root, "group_size"), 0, 65535, &gs) ||
	    (!strcmp(gran, "group") && gs < 1))
		return BAD("%s: \"group_size\" must be an integer in [0, 65535] (>= 1 with group granularity)", path);
	const cJSON *fr = cJSON_GetObjectItemCaseSensitive(root, "full_range");
	if (!cJSON_IsBool(fr))
		return BAD("%s: \"full_range\" must be true or false", path);
	if (!sha || strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64)
		return BAD("%s: \"model_sha256\" must be 64 lower-case hex digits", path);
	if (get_int(cJSON_GetObjectItemCaseSensitive(root, "samples"), 1, (int64_t)1 << 40, &samples))
		return BAD("%s: \"samples\" must be a positive integer", path);
	unsigned methods = 0;
	const char *badm;
	if (!meth || qt_parse_methods(meth, &methods, &badm))
		return BAD("%s: \"methods\" must be a method list (rtn, gptq, bias-correction, mse)", path);
	const cJSON *js = cJSON_GetObjectItemCaseSensitive(root, "settings");
	const cJSON *jl = cJSON_GetObjectItemCaseSensitive(root, "layers");
	int S = cJSON_IsArray(js) ? cJSON_GetArraySize(js) : 0, L = cJSON_IsArray(jl) ? cJSON_GetArraySize(jl) : 0;
	if (S < 1 || S > MAX_SETTINGS)
		return BAD("%s: \"settings\" must be an array of 1 to %d settings", path, MAX_SETTINGS);
	if (L < 1 || L > MAX_LAYERS)
		return BAD("%s: \"layers\" must be an array of 1 to %d layers", path, MAX_LAYERS);
	enum qt_status st = qt_sens_alloc(s, L, S);
	if (st)
		return st;
	for (int k = 0; k < S; k++) {
		const cJSON *j = cJSON_GetArrayItem(js, k);
		if (!cJSON_IsString(j) || qt_bits_setting_parse(j->valuestring, &s->settings[k]))
			return BAD("%s: settings[%d] must be \"wXaY\", a weight format or \"float\"", path, k);
		for (int i = 0; i < k; i++)
			if (qt_bits_setting_eq(&s->settings[i], &s->settings[k]))
				return BAD("%s: setting \"%s\" appears twice", path, j->valuestring);
	}
	for (int l = 0; l < L; l++)
		if ((st = read_layer(path, cJSON_GetArrayItem(jl, l), l, s)) != QT_OK)
			return st;
	snprintf(s->loss, sizeof s->loss, "%s", loss);
	snprintf(s->model_sha256, sizeof s->model_sha256, "%s", sha);
	snprintf(s->data, sizeof s->data, "%s", data ? data : "");
	s->gran = !strcmp(gran, "tensor") ? QT_GRAN_TENSOR : !strcmp(gran, "group") ? QT_GRAN_GROUP : QT_GRAN_CHANNEL;
	s->group_size = (int)gs;
	s->wfull = cJSON_IsTrue(fr);
	s->methods = methods;
	s->samples = samples;
	return QT_OK;
}

enum qt_status qt_sens_read_mem(const void *buf, size_t len, const char *label, struct qt_sens *out)
{
	memset(out, 0, sizeof *out);
	cJSON *root = len > 0 && len <= (size_t)MAX_FILE_BYTES ? cJSON_ParseWithLength(buf, len) : NULL;
	if (!root)
		return BAD("%s: not valid JSON", label);
	enum qt_status st = read_root(label, root, out);
	cJSON_Delete(root);
	if (st)
		qt_sens_free(out);
	return st;
}

enum qt_status qt_sens_read(const char *path, struct qt_sens *out)
{
	memset(out, 0, sizeof *out);
	long len = 0;
	char *buf = slurp(path, &len);
	if (!buf)
		return len > MAX_FILE_BYTES ? BAD("%s: larger than %ld bytes", path, MAX_FILE_BYTES)
					    : qt_error(QT_E_IO, "%s: cannot read", path);
	enum qt_status st = qt_sens_read_mem(buf, (size_t)len, path, out);
	free(buf);
	return st;
}
