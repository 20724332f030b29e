/*
 * The sensitivity file (lib/quant/sensfile.c): what is written reads back
 * exactly (costs bit for bit), and each kind of damage is refused with a
 * message naming the file and the place. Settings lists parse and refuse
 * repeats.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtool/bitalloc.h"
#include "../../lib/quant/sens_int.h"
#include "testgraph.h"

static void make_sens(struct qt_sens *s, uint64_t seed)
{
	rng_seed(seed);
	cr_assert_eq(qt_sens_alloc(s, 3, 2), QT_OK);
	s->settings[0] = (struct qt_bits_setting){8, 8, QT_FMT_INT};
	s->settings[1] = (struct qt_bits_setting){2, 8, QT_FMT_INT};
	for (int l = 0; l < 3; l++) {
		char name[32];
		snprintf(name, sizeof name, "layer[%d]*", l);
		s->names[l] = strdup(name);
		s->ops[l] = strdup("Conv");
		s->params[l] = 100 + l;
		s->macs[l] = 1000 * (l + 1);
		for (int k = 0; k < 2; k++) {
			s->cost[l * 2 + k] = urand() * 1e-3 / (k + 1);
			s->bytes[l * 2 + k] = 10 * (l + 1) * (k + 1);
			/* layer 2 at w2a8 unmeasured: null in the file */
			s->sqnr[l * 2 + k] = l == 2 && k == 1 ? NAN : 40.0 / (k + 1) + l;
			s->ns[l * 2 + k] = l == 2 && k == 1 ? -1 : 1000 * (l + 1) + k;
		}
	}
	snprintf(s->loss, sizeof s->loss, "kl");
	memset(s->model_sha256, 'a', 64);
	s->samples = 64;
	s->gran = QT_GRAN_GROUP;
	s->group_size = 32;
	s->wfull = 1;
}

static char *write_tmp(const char *text)
{
	static char path[] = "/tmp/qt_sens_XXXXXX";
	strcpy(path, "/tmp/qt_sens_XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

Test(sensfile, round_trip_is_exact)
{
	struct qt_sens s, r;
	make_sens(&s, 5);
	char *json;
	cr_assert_eq(qt_sens_to_json(&s, "m.onnx", &json), QT_OK);
	char *path = write_tmp(json);
	cr_assert_eq(qt_sens_read(path, &r), QT_OK, "%s", qt_error_msg());
	unlink(path);
	cr_assert_eq(r.n_layers, 3);
	cr_assert_eq(r.n_settings, 2);
	cr_assert_eq(r.settings[1].wbits, 2);
	cr_assert_eq(r.gran, QT_GRAN_GROUP);
	cr_assert_eq(r.group_size, 32);
	cr_assert_eq(r.wfull, 1);
	for (int l = 0; l < 3; l++) {
		cr_assert_str_eq(r.names[l], s.names[l]);
		cr_assert_eq(r.macs[l], s.macs[l]);
		for (int k = 0; k < 2; k++) {
			cr_assert_eq(r.cost[l * 2 + k], s.cost[l * 2 + k], "cost %d,%d not bit-exact", l, k);
			cr_assert_eq(r.bytes[l * 2 + k], s.bytes[l * 2 + k]);
			cr_assert_eq(r.ns[l * 2 + k], s.ns[l * 2 + k], "latency %d,%d", l, k);
			cr_assert(isnan(s.sqnr[l * 2 + k]) ? isnan(r.sqnr[l * 2 + k])
							   : fabs(r.sqnr[l * 2 + k] - s.sqnr[l * 2 + k]) < 1e-9,
				  "sqnr %d,%d", l, k);
		}
	}
	free(json);
	qt_sens_free(&s);
	qt_sens_free(&r);
}

/* Replace the first occurrence of `from` in text by `to` (malloc'd). */
static char *damage(const char *text, const char *from, const char *to)
{
	const char *p = strstr(text, from);
	cr_assert(p, "'%s' not in the file", from);
	char *out = malloc(strlen(text) + strlen(to) + 1);
	memcpy(out, text, (size_t)(p - text));
	strcpy(out + (p - text), to);
	strcat(out, p + strlen(from));
	return out;
}

Test(sensfile, damage_is_refused_with_its_place)
{
	struct qt_sens s, r;
	make_sens(&s, 9);
	char *json;
	cr_assert_eq(qt_sens_to_json(&s, "m.onnx", &json), QT_OK);
	static const struct {
		const char *from, *to, *msg;
	} cases[] = {
		{"\"version\":\t1", "\"version\":\t2", "\"version\" must be 1"},
		{"\"cost\":\t[", "\"cost\":\t[-1, ", "must be arrays of 2"},
		{"\"cost\":\t[", "\"cost\":\t[\"x\", 0]\n, \"c\": [", "cost[0] must be a finite number"},
		{"\"bytes\":\t[", "\"bytes\":\t[1.5, 2]\n, \"b\": [", "bytes[0] must be an integer"},
		{"\"bytes\":\t[10", "\"bytes\":\t[-10", "bytes[0] must be an integer"},
		{"\"w2a8\"", "\"w5a8\"", "settings[1] must be"},
		{"\"w2a8\"", "\"w8a8\"", "appears twice"},
		{"layer[1]*", "layer[0]*", "appears twice"},
		{"\"granularity\":\t\"group\"", "\"granularity\":\t\"row\"", "\"granularity\" must be"},
		{"\"format\":\t\"qtool-sensitivity\"", "\"format\":\t\"qtool-calib\"", "not a sensitivity file"},
		{"\"samples\":\t64", "\"samples\":\t0", "\"samples\" must be a positive integer"},
		{"{", "[", "not valid JSON"},
		{"\"sqnr_db\":\t[", "\"sqnr_db\":\t[\"x\", 0]\n, \"q\": [", "sqnr_db[0] must be a finite number or null"},
		{"\"latency_ns\":\t[", "\"latency_ns\":\t[-1, 0]\n, \"t\": [", "latency_ns[0] must be an integer"},
		{"\"latency_ns\":\t[", "\"latency_ns\":\t[1, 2, ", "\"latency_ns\" must be an array of 2"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *bad = damage(json, cases[i].from, cases[i].to);
		char *path = write_tmp(bad);
		enum qt_status st = qt_sens_read(path, &r);
		unlink(path);
		cr_assert_eq(st, QT_E_FORMAT, "case %zu accepted", i);
		cr_assert(strstr(qt_error_msg(), cases[i].msg) && strstr(qt_error_msg(), "/tmp/qt_sens_"),
			  "case %zu: message '%s' lacks '%s'", i, qt_error_msg(), cases[i].msg);
		free(bad);
	}
	cr_assert_eq(qt_sens_read("/nonexistent/sens.json", &r), QT_E_IO);
	free(json);
	qt_sens_free(&s);
}

Test(sensfile, settings_lists)
{
	struct qt_bits_setting s[4];
	const char *bad;
	cr_assert_eq(qt_bits_settings_parse("w8a8,w4a4,float", s, 4, &bad), 3);
	cr_assert_eq(s[2].wbits, 32);
	char b[QT_SETTING_STR_MAX];
	cr_assert_str_eq(qt_bits_setting_str(&s[1], b), "w4a4");
	cr_assert_str_eq(qt_bits_setting_str(&s[2], b), "float");
	cr_assert_eq(qt_bits_settings_parse("w8a8,w8a8", s, 4, &bad), -1);
	cr_assert_str_eq(bad, "w8a8");
	cr_assert_eq(qt_bits_settings_parse("w8a8,", s, 4, &bad), -1);
	cr_assert_eq(qt_bits_settings_parse("w8a8,w7a8", s, 4, &bad), -1);
	cr_assert_str_eq(bad, "w7a8");
	cr_assert_eq(qt_bits_settings_parse("w8a8,w4a8,w3a8,w2a8,w4a4", s, 4, &bad), -1);

}

/* Number formats as settings: a bare name has 8-bit activations, ":a4" 4-bit
 * ones; int8..int2 are the wXaY settings; every string parses back to its
 * setting; the same setting twice under two names is a repeat. */
Test(sensfile, format_settings)
{
	struct qt_bits_setting s[8];
	const char *bad;
	char b[QT_SETTING_STR_MAX];
	cr_assert_eq(qt_bits_settings_parse("int4,fp4_e2m1,mxfp4:a4,nvfp4,mxfp8_e4m3:a4,int3:a4,fp8_e5m2", s, 8, &bad), 7);
	static const char *const want[] = {"w4a8", "fp4_e2m1", "mxfp4:a4", "nvfp4", "mxfp8_e4m3:a4", "w3a4", "fp8_e5m2"};
	for (int i = 0; i < 7; i++) {
		struct qt_bits_setting back;
		cr_assert_str_eq(qt_bits_setting_str(&s[i], b), want[i]);
		cr_assert_eq(qt_bits_setting_parse(b, &back), 0);
		cr_assert(qt_bits_setting_eq(&back, &s[i]), "%s does not parse back", b);
	}
	cr_assert(s[1].wfmt == QT_FMT_FP4_E2M1 && s[1].wbits == 4 && s[1].abits == 8);
	cr_assert(s[2].wfmt == QT_FMT_MXFP4 && s[2].abits == 4);
	cr_assert(s[0].wfmt == QT_FMT_INT && s[0].wbits == 4);
	cr_assert_eq(qt_bits_settings_parse("w4a8,int4", s, 8, &bad), -1);
	cr_assert_str_eq(bad, "int4");
	cr_assert_eq(qt_bits_settings_parse("fp4_e2m1,fp4_e2m1:a8", s, 8, &bad), -1);
	cr_assert_eq(qt_bits_settings_parse("fp4_e2m1:a2", s, 8, &bad), -1);
	cr_assert_eq(qt_bits_settings_parse("fp5_e2m2", s, 8, &bad), -1);
	cr_assert_eq(qt_bits_settings_parse("float:a4", s, 8, &bad), -1);
}
