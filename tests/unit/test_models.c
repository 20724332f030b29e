/*
 * The bundled models against what PyTorch measured when it trained them
 * (models/manifest.json): the file is the one trained, qtool's FP32 top-1
 * on the full 10k test set is within 2 samples of PyTorch's, and the logits
 * of the first test images match PyTorch's.
 *
 * Tolerances: FP32 summation order differs between OpenBLAS and PyTorch, so
 * a sample whose top two logits nearly tie may flip (the manifest counts
 * them: torch_ambiguous); at most 2 of 10,000 may differ. Logits agree to
 * 1e-3 relative to the largest logit of the sample.
 *
 * Under AddressSanitizer (make test SAN=1) only the first 1000 images run:
 * that build checks memory safety on the same code path, and the full 10k
 * accuracy comparison belongs to the release build, where it takes seconds.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "qtool/dataset.h"
#include "qtool/model.h"

static cJSON *manifest(void)
{
	FILE *f = fopen("models/manifest.json", "rb");
	cr_assert(f, "models/manifest.json missing (run from the repository root)");
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	cJSON *root = cJSON_Parse(buf);
	cr_assert(root, "models/manifest.json is not JSON");
	return root;
}

static const cJSON *entry(const cJSON *root, const char *name)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "models"))
	{
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");
		if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
			return m;
	}
	cr_assert_fail("manifest has no model %s", name);
	return NULL;
}

#if defined(__SANITIZE_ADDRESS__)
#define EVAL_SAMPLES 1000
#else
#define EVAL_SAMPLES 0 /* all */
#endif

static void check_model(const char *name)
{
	cJSON *root = manifest();
	const cJSON *e = entry(root, name);
	char path[256];
	snprintf(path, sizeof path, "models/%s", cJSON_GetObjectItemCaseSensitive(e, "file")->valuestring);
	struct qt_model *m;
	cr_assert_eq(qt_model_open(path, &m), QT_OK, "%s", qt_error_msg());
	cr_assert_str_eq(qt_model_sha256_hex(m), cJSON_GetObjectItemCaseSensitive(e, "sha256")->valuestring,
			 "%s is not the file the manifest describes", path);
	struct qt_dataset *ds;
	struct qt_dataset_opts o = {.limit = EVAL_SAMPLES};
	cr_assert_eq(qt_dataset_open("fashion-mnist:test", &o, &ds), QT_OK, "%s", qt_error_msg());
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(e, "reference");
	const cJSON *rlog = cJSON_GetObjectItemCaseSensitive(ref, "logits");
	int64_t labels[250], correct = 0, seen = 0;
	struct qt_tensor x = {0}, y = {0};
	for (;;) {
		int n;
		cr_assert_eq(qt_dataset_next(ds, 250, &x, labels, &n), QT_OK, "%s", qt_error_msg());
		if (!n)
			break;
		cr_assert_eq(qt_model_run(m, &x, &y), QT_OK, "%s", qt_error_msg());
		const float *p = y.data;
		for (int i = 0; i < n; i++) {
			int best = 0;
			for (int c = 1; c < 10; c++)
				if (p[i * 10 + c] > p[i * 10 + best])
					best = c;
			correct += best == labels[i];
			if (seen + i < cJSON_GetArraySize(rlog)) {
				const cJSON *row = cJSON_GetArrayItem(rlog, (int)(seen + i));
				double amax = 0;
				for (int c = 0; c < 10; c++)
					amax = fmax(amax, fabs(cJSON_GetArrayItem(row, c)->valuedouble));
				for (int c = 0; c < 10; c++) {
					double want = cJSON_GetArrayItem(row, c)->valuedouble;
					cr_assert(fabs(p[i * 10 + c] - want) <= 1e-3 * amax + 1e-5,
						  "%s: sample %lld logit %d is %g, PyTorch %g", name, (long long)(seen + i), c,
						  p[i * 10 + c], want);
				}
			}
		}
		seen += n;
		qt_tensor_free(&y);
	}
	int64_t want = (int64_t)cJSON_GetObjectItemCaseSensitive(e, "torch_correct")->valuedouble;
	if (EVAL_SAMPLES == 0) {
		cr_assert_eq(seen, 10000);
		cr_assert(llabs(correct - want) <= 2, "%s: qtool FP32 top-1 %lld/10000, PyTorch %lld/10000", name,
			  (long long)correct, (long long)want);
	}
	qt_tensor_free(&x);
	qt_dataset_close(ds);
	qt_model_free(m);
	cJSON_Delete(root);
}

Test(models, fmnist_mlp_matches_pytorch, .timeout = 300) { check_model("fmnist_mlp"); }
Test(models, fmnist_cnn_matches_pytorch, .timeout = 300) { check_model("fmnist_cnn"); }
Test(models, fmnist_resnet_matches_pytorch, .timeout = 300) { check_model("fmnist_resnet"); }
Test(models, fmnist_mobilenet_matches_pytorch, .timeout = 300) { check_model("fmnist_mobilenet"); }
Test(models, fmnist_vit_matches_pytorch, .timeout = 300) { check_model("fmnist_vit"); }
