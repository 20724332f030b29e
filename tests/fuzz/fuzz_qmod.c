/* libFuzzer harness for the .qmod reader (and the integer runtime's preparation). */
#include <stddef.h>
#include <stdint.h>

#include "qtool/qmod.h"
#include "../../lib/rt/qmodel_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qt_graph *g = NULL;
	if (qt_qmod_read_mem(data, size, "fuzz.qmod", &g) == QT_OK) {
		struct qt_qrt *q = NULL;
		if (qt_qrt_new(g, &q) == QT_OK)
			qt_qrt_free(q);
		struct qt_qmod_summary s;
		qt_qmod_summarize(g, &s);
		qt_graph_free(g);
	}
	return 0;
}
