/* qtool entry point: dispatches to one file per subcommand. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "qtool/rt.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
} commands[] = {
	{"inspect", cmd_inspect, "show a model's inputs, outputs, ops, parameters and MACs"},
	{"run", cmd_run, "run an ONNX or .qmod model on .npy/.pb inputs and write .npy outputs"},
	{"eval", cmd_eval, "measure accuracy, or outputs against a reference, over a dataset"},
	{"compare", cmd_compare, "gate a new eval report against a baseline (CI)"},
	{"calibrate", cmd_calibrate, "record activation statistics over a dataset"},
	{"analyze", cmd_analyze, "measure each layer's sensitivity to each bit width (mixed precision)"},
	{"quantize", cmd_quantize, "quantize a model with a calibration file into .qmod"},
	{"export", cmd_export, "write a .qmod as a standard ONNX QDQ model (ONNX Runtime)"},
	{"bench", cmd_bench, "time a model's runtime on random inputs (ms per batch)"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: qtool COMMAND [ARGS]\n\n"
		   "qtool quantizes trained FP32 ONNX models to small integer models and measures\n"
		   "what the quantization cost.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'qtool help COMMAND' (or 'qtool COMMAND --help') explains each command.\n"
		   "exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input\n");
}

/*
 * OpenBLAS fell back to its generic kernels on a CPU it does not know (see
 * qtool/rt.h): run this command again with OPENBLAS_CORETYPE naming the
 * kernels the CPU supports. At most once, since the child sees the variable
 * set; a value the user set is never replaced. If exec fails the command runs
 * here, only slower.
 */
static void use_fast_blas(char **argv)
{
	const char *core = qt_rt_blas_core_wanted();
	if (!core || getenv("OPENBLAS_CORETYPE") || setenv("OPENBLAS_CORETYPE", core, 1) != 0)
		return;
	execv("/proc/self/exe", argv);
	unsetenv("OPENBLAS_CORETYPE");
}

int main(int argc, char **argv)
{
	use_fast_blas(argv);
	cli_set_command_line(argc, argv);
	/* The runtimes allocate each intermediate tensor per batch and free it
	 * after its last use. glibc's defaults hand large blocks to mmap and trim
	 * the heap top on free, so every batch paid page faults and zeroing
	 * again (a third of the ViT's time). Keep freed memory for reuse: the
	 * peak is still bounded by the model and the batch, not the dataset. */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	if (argc < 2) {
		usage(stderr);
		return QT_EXIT_BAD_INPUT;
	}
	if (!strcmp(argv[1], "help") && argc == 3) {
		/* qtool help CMD: the command's own --help. */
		char *hargv[] = {argv[2], "--help", NULL};
		for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
			if (!strcmp(argv[2], commands[i].name))
				return commands[i].fn(2, hargv);
		fprintf(stderr, "qtool help: unknown command '%s' (see 'qtool --help')\n", argv[2]);
		return QT_EXIT_BAD_INPUT;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || (!strcmp(argv[1], "help") && argc == 2)) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "help")) {
		fprintf(stderr, "qtool help: give one command (see 'qtool --help')\n");
		return QT_EXIT_BAD_INPUT;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("qtool %s\n", QT_VERSION_STRING);
		return 0;
	}
	int rc = cli_check_env();
	if (rc >= 0)
		return rc;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "qtool: unknown command '%s' (see 'qtool --help')\n", argv[1]);
	return QT_EXIT_BAD_INPUT;
}
