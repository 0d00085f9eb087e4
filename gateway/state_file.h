/*
 * state_file.h: the duplicate window kept in files under state_dir.
 *
 * One file per client, state_dir/clients/<client_id>.state, replaced
 * atomically (temporary file, fsync, rename, fsync of the directory) on
 * every commit and read lazily the first time a client is seen.  A file
 * that fails its checks is an error for that client's requests until an
 * operator repairs or removes it: it is never silently reset, since a reset
 * window would forward repeats again.
 */
#ifndef FLOWPOST_GATEWAY_STATE_FILE_H
#define FLOWPOST_GATEWAY_STATE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "state.h"

/*
 * Creates state_dir/clients if needed and proves it is writable (a durable
 * probe write).  `window` is dedup_window.
 */
int	 state_file_open(const char *state_dir, uint64_t window,
	    const struct state_ops **ops, void **ctx, char *err,
	    size_t errlen);

#endif
