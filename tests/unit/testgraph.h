/*
 * Small graphs, random data and calibration shared by the unit tests
 * (test_quant.c, test_methods.c). Fixed seeds: rng_seed before each use.
 */
#ifndef QT_TESTGRAPH_H
#define QT_TESTGRAPH_H

#include <stdint.h>

#include "qtool/calib.h"
#include "qtool/graph.h"

struct qt_dataset;

extern uint64_t rng_state;
void rng_seed(uint64_t s);
double urand(void);
double nrand(void);
int cmp_d(const void *a, const void *b);
int add_tensor(struct qt_graph *g, const char *name, enum qt_dtype dt, int rank, const int64_t *dims, const void *vals);
int add_const(struct qt_graph *g, const char *name, int rank, const int64_t *dims, const float *vals);
void node_io(struct qt_graph *g, int ni, int nin, const int *ins, int nout, const int *outs);
void node_ints(struct qt_graph *g, int ni, const char *name, int n, const int64_t *v);
int add_random(struct qt_graph *g, const char *name, int rank, const int64_t *dims, float sd);
int add_input_nchw(struct qt_graph *g, int64_t C, int64_t H, int64_t W);
struct qt_graph *finish_graph(struct qt_graph *g, int x, int y);
struct qt_graph *small_cnn(uint64_t seed);
struct qt_graph *dwsep_cnn(uint64_t seed, int relu6);
void random_input(struct qt_tensor *x, int n, uint64_t seed);
void run_fp32(const struct qt_graph *g, const struct qt_tensor *x, struct qt_tensor *y);
struct qt_calib_table *calibrate(struct qt_graph *g);
/* Run a prepared graph's FP32 function (fused activations applied) on x. */
void run_prepared(struct qt_graph *g, const struct qt_tensor *x, struct qt_tensor *y);
/* max |a - b| / max |a| over two float tensors of the same size. */
double rel_diff(const struct qt_tensor *a, const struct qt_tensor *b);
/* Index of the node called name (fails the test when none). */
int node_by_name(const struct qt_graph *g, const char *name);
/* The first `limit` samples of a dataset spec (fails the test on error). */
struct qt_dataset *open_split(const char *spec, int64_t limit);
/* The same with another input generator (16 samples a batch, seeds 100..103). */
struct qt_calib_table *calibrate_with(struct qt_graph *g, void (*input)(struct qt_tensor *x, int n, uint64_t seed));
/* Write quantized g as a .qmod, read it back twice and run x through the
 * integer runtime (*yi) and the float simulation (*ys); *out_scale gets the
 * output's scale. */
void int_and_sim(const struct qt_graph *g, const struct qt_tensor *x, struct qt_tensor *yi, struct qt_tensor *ys,
		 float *out_scale);

#endif
