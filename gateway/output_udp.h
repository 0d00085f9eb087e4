/*
 * output_udp.h: re-emission as UDP datagrams to the configured collectors.
 */
#ifndef FLOWPOST_GATEWAY_OUTPUT_UDP_H
#define FLOWPOST_GATEWAY_OUTPUT_UDP_H

#include <stddef.h>

#include "config.h"
#include "output.h"

#define OUTPUT_UDP_SNDBUF	(4 * 1024 * 1024)

struct srcmap;

/* Opens one unconnected socket per collector. */
int	 output_udp_open(const struct config_addr *collectors, size_t n,
	    const struct output_ops **ops, void **ctx, char *err,
	    size_t errlen);

/*
 * Sends through `sm` (exporter identity, srcmap.h) from now on; the
 * caller keeps it and closes it after the output.  Call before the first
 * send.
 */
void	 output_udp_set_srcmap(void *ctx, struct srcmap *sm);

#endif
