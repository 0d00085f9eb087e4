/*
 * recv.h: the UDP listeners and the receive step of the main loop.
 *
 * Datagrams are drained with recvmmsg into a fixed array of preallocated
 * 64 KiB slots, stamped, sniffed (nf_check) and handed to the batcher.
 * Nothing is allocated per datagram.
 */
#ifndef FLOWPOST_CLIENT_RECV_H
#define FLOWPOST_CLIENT_RECV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RECV_SLOTS	32
#define RECV_SLOT_SIZE	65536

struct batcher;
struct recv;

/*
 * Binds one non-blocking socket per address.  -1 with a logged message
 * naming the address that failed.
 */
int	 recv_open(struct recv **out, const struct sockaddr_storage *addrs,
	    const socklen_t *lens, size_t n, uint64_t rcvbuf,
	    struct batcher *b, int drop_malformed);
void	 recv_close(struct recv *r);
/* Reload: a new drop_malformed setting. */
void	 recv_set_drop_malformed(struct recv *r, int drop_malformed);
/* "0.0.0.0:2055 [::]:2055": the bound addresses, for the start line. */
void	 recv_describe(const struct recv *r, char *out, size_t outlen);

/*
 * Waits up to `timeout_ms` for datagrams and drains every readable socket.
 * Returns 0, also when interrupted by a signal.
 */
int	 recv_poll(struct recv *r, int timeout_ms);

#endif
