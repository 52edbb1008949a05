/* The cluster's implementation of the routing seam (im/route.h): answers through Redis. */
#ifndef IMGATE_CLUSTER_ROUTE_CLUSTER_H
#define IMGATE_CLUSTER_ROUTE_CLUSTER_H

#include "im/route.h"

extern const route_ops_t route_cluster;

#endif
