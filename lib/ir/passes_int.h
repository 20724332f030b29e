/* Internal helpers shared by graph passes. */
#ifndef QT_IR_PASSES_INT_H
#define QT_IR_PASSES_INT_H

#include "qtool/graph.h"

/* Drop nodes whose dead[i] is set, keeping order. Call qt_graph_finalize after. */
void qt_graph_remove_nodes(struct qt_graph *g, const char *dead);

#endif
