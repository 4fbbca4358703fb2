#ifndef QTRAIN_CBLAS_SHIM_H
#define QTRAIN_CBLAS_SHIM_H
#include <cblas.h>
#endif
