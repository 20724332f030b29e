/* qtool inspect for .qmod files: provenance, layout, per-layer bits and bytes. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"
#include "report.h"

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	uint8_t *b = n > 0 ? malloc((size_t)n) : NULL;
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = b ? (size_t)n : 0;
	return b;
}

int cmd_inspect_qmod(const char *path, int json)
{
	size_t len;
	uint8_t *buf = slurp(path, &len);
	if (!buf)
		return cli_usage_error("inspect", "%s: cannot read", path);
	struct qt_graph *g;
	enum qt_status st = qt_qmod_read_mem(buf, len, path, &g);
	if (st) {
		free(buf);
		return cli_status_error("inspect", st);
	}
	struct qt_qmod_section secs[32];
	int ns = qt_qmod_sections(buf, len, secs, 32);
	struct qt_qmod_summary s;
	qt_qmod_summarize(g, &s);
	double bound = 1.10 * ((double)s.weight_bits / 8 + (double)s.qparam_bytes) + 8192;
	cJSON *root = json ? cJSON_CreateObject() : NULL, *jl = NULL, *jf = NULL;
	if (json) {
		cJSON_AddStringToObject(root, "model", path);
		cJSON_AddStringToObject(root, "format", "qmod");
		cJSON_AddNumberToObject(root, "file_bytes", (double)len);
		cJSON_AddStringToObject(root, "source_sha256", g->src_sha256_hex ? g->src_sha256_hex : "");
		cJSON_AddStringToObject(root, "calib_method", g->calib_method ? g->calib_method : "");
		cJSON_AddStringToObject(root, "qtool_version", g->qtool_version ? g->qtool_version : "");
		cJSON_AddStringToObject(root, "command_line", g->command_line ? g->command_line : "");
		cJSON_AddStringToObject(root, "methods", g->quant_methods ? g->quant_methods : "");
		cJSON_AddNumberToObject(root, "weight_bits", (double)s.weight_bits);
		cJSON_AddNumberToObject(root, "qparam_bytes", (double)s.qparam_bytes);
		cJSON_AddNumberToObject(root, "size_bound_bytes", bound);
		cJSON *js = cJSON_AddArrayToObject(root, "sections");
		for (int i = 0; i < ns; i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "name", secs[i].name);
			cJSON_AddNumberToObject(o, "offset", (double)secs[i].offset);
			cJSON_AddNumberToObject(o, "bytes", (double)secs[i].length);
			cJSON_AddItemToArray(js, o);
		}
		jl = cJSON_AddArrayToObject(root, "layers");
		jf = cJSON_AddArrayToObject(root, "float_nodes");
	} else {
		printf("model: %s (.qmod v%u, %zu bytes, %d nodes, opset %d)\n", path,
		       (unsigned)buf[8] | (unsigned)buf[9] << 8 | (unsigned)buf[10] << 16 | (unsigned)buf[11] << 24, len,
		       g->n_nodes, g->opset);
		printf("source sha256: %s\ncalibration: %s\nmade by: qtool %s: %s\n",
		       g->src_sha256_hex ? g->src_sha256_hex : "?", g->calib_method ? g->calib_method : "?",
		       g->qtool_version ? g->qtool_version : "?", g->command_line ? g->command_line : "");
		printf("methods: %s\n", g->quant_methods && g->quant_methods[0] ? g->quant_methods : "(not recorded)");
		printf("size: %zu bytes; bound 1.10 x (weights %.0f + qparams %lld) + 8192 = %.0f\n", len,
		       (double)s.weight_bits / 8, (long long)s.qparam_bytes, bound);
		printf("layout:\n");
		for (int i = 0; i < ns; i++)
			printf("  %-8s offset %8llu  %8llu bytes\n", secs[i].name, (unsigned long long)secs[i].offset,
			       (unsigned long long)secs[i].length);
		printf("quantized layers (bits/weight: codes plus their scales and zero points as stored):\n"
		       "  %-28s %-8s %5s %4s %-8s %5s %-5s %8s %10s %11s  %s\n",
		       "node", "op", "bits", "act", "scales", "group", "codes", "params", "bytes", "bits/weight", "format");
	}
	int64_t all_params = 0, all_bits = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct qt_node *n = &g->nodes[i];
		struct cli_qlayer l;
		if (!cli_qmod_layer(g, i, &l))
			continue;
		const struct qt_value *w = &g->values[n->inputs[1]];
		int64_t np = l.params, lbits = l.bytes * 8;
		double bpw = np > 0 ? (double)lbits / (double)np : 0;
		all_params += np;
		all_bits += lbits;
		if (json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "node", n->name);
			cJSON_AddStringToObject(o, "op", n->op_type);
			cJSON_AddNumberToObject(o, "weight_bits", l.wbits);
			cJSON_AddNumberToObject(o, "act_bits", l.abits);
			cJSON_AddStringToObject(o, "granularity", l.granularity);
			cJSON_AddNumberToObject(o, "parameters", (double)np);
			cJSON_AddNumberToObject(o, "weight_bytes", (double)w->init->nbytes);
			cJSON_AddNumberToObject(o, "bytes", (double)(lbits / 8)); /* codes plus scales as stored */
			cJSON_AddNumberToObject(o, "group_size", w->q->scheme == QT_QSCHEME_GROUP ? w->q->group_size : 0);
			cJSON_AddStringToObject(o, "code_range", w->q->full_range ? "full" : "restricted");
			cJSON_AddStringToObject(o, "scale_storage", w->q->scale_enc == QT_SCALE_ROW_U8      ? "f32 row + u8 group"
								    : w->q->scale_enc == QT_SCALE_E8M0    ? "e8m0 block"
								    : w->q->scale_enc == QT_SCALE_NV_E4M3 ? "f32 tensor + e4m3 block"
													  : "f32");
			cJSON_AddStringToObject(o, "format", l.format);
			cJSON_AddBoolToObject(o, "decoded", l.decoded);
			cJSON_AddNumberToObject(o, "bits_per_weight", bpw);
			cJSON_AddItemToArray(jl, o);
		} else {
			printf("  %-28s %-8s %5d %4d %-8s %5d %-5s %8lld %10zu %11.3f  %s%s\n", n->name[0] ? n->name : "(unnamed)",
			       n->op_type, l.wbits, l.abits, l.granularity,
			       w->q->scheme == QT_QSCHEME_GROUP ? w->q->group_size : 0, w->q->full_range ? "full" : "symm",
			       (long long)np, w->init->nbytes, bpw, l.format, l.decoded ? " (decoded)" : "");
		}
	}
	double all_bpw = all_params > 0 ? (double)all_bits / (double)all_params : 0;
	if (json)
		cJSON_AddNumberToObject(root, "bits_per_weight", all_bpw);
	else
		printf("  %-28s %-8s %5s %4s %-8s %5s %-5s %8lld %10lld %11.3f\n", "total", "", "", "", "", "", "", (long long)all_params,
		       (long long)((all_bits + 7) / 8), all_bpw);
	if (!json)
		printf("nodes run as dequantize -> FP32 -> quantize (%d):\n", s.float_nodes);
	for (int i = 0; i < g->n_nodes; i++) {
		char why[256];
		const char *reason = qt_node_float_reason(g, i, why, sizeof why);
		if (!reason)
			continue;
		const struct qt_node *n = &g->nodes[i];
		if (json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "node", n->name);
			cJSON_AddStringToObject(o, "op", n->op_type);
			cJSON_AddStringToObject(o, "reason", reason);
			/* A weighted op with a constant weight: what the quantizer is meant to take. */
			cJSON_AddBoolToObject(o, "weighted", qt_is_weighted_op(n) && n->n_inputs > 1 && n->inputs[1] >= 0 &&
							     g->values[n->inputs[1]].init);
			cJSON_AddItemToArray(jf, o);
		} else {
			printf("  %-28s %-14s %s\n", n->name[0] ? n->name : "(unnamed)", n->op_type, reason);
		}
	}
	if (json) {
		char *t = cJSON_Print(root);
		if (t)
			puts(t);
		free(t);
		cJSON_Delete(root);
	}
	qt_graph_free(g);
	free(buf);
	return 0;
}
