/* Internal to the sensitivity files of lib/quant (sensitivity.c, sensfile.c). */
#ifndef QT_SENS_INT_H
#define QT_SENS_INT_H

#include "qtool/bitalloc.h"

/* s zeroed, with zeroed arrays for n_layers x n_settings (names and ops NULL);
 * QT_E_NOMEM leaves s freed. */
enum qt_status qt_sens_alloc(struct qt_sens *s, int n_layers, int n_settings);

#endif
