/*
 * test_srcmap.c: exporter identity on the last hop (gateway/srcmap.h):
 * the UDP checksum of spoofed IPv4 datagrams, and source_port_map's
 * per-exporter sockets on loopback (no privileges needed).
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "srcmap.h"

static void
test_checksum(void)
{
	const uint8_t	 src[4] = { 192, 0, 2, 1 };
	const uint8_t	 dst[4] = { 198, 51, 100, 7 };
	uint8_t		 udp[8 + 9] = { 0x08, 0x07, 0x27, 0x0b, 0, 16, 0, 0 };

	/* Reference values from an independent implementation. */
	memcpy(udp + 8, "flowpost", 8);
	CHECK_EQ_U64(srcmap_udp4_checksum(src, dst, udp, 16), 0x2ab8);
	udp[5] = 17;
	memcpy(udp + 8, "flowpost!", 9);	/* odd length */
	CHECK_EQ_U64(srcmap_udp4_checksum(src, dst, udp, 17), 0x09b6);
}

/* A loopback socket to receive on; its address into *ss. */
static int
listener(struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	int			 fd = socket(AF_INET, SOCK_DGRAM, 0);

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*len = sizeof(*sin);
	CHECK(bind(fd, (struct sockaddr *)ss, *len) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)ss, len) == 0);
	return fd;
}

/* Source port of the next datagram on fd. */
static uint16_t
from_port(int fd)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	char			 b[64];

	CHECK(recvfrom(fd, b, sizeof(b), 0, (struct sockaddr *)&sin,
	    &len) > 0);
	return ntohs(sin.sin_port);
}

static void
test_port_map(void)
{
	struct srcmap_params	 p;
	struct srcmap		*sm;
	struct srcmap_counters	 c;
	struct sockaddr_storage	 ss;
	struct wire_entry	 e[4];
	struct pacer		 pc;
	socklen_t		 len;
	uint64_t		 bytes;
	size_t			 sent;
	uint16_t		 port[4];
	char			 err[128];
	int			 fd, plain;

	fd = listener(&ss, &len);
	plain = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(pacer_init(&pc, 0, 0) == 0);
	memset(&p, 0, sizeof(p));
	p.source_port_map = 1;
	p.sockets_max = 2;
	sm = srcmap_open(&p, err, sizeof(err));
	CHECK(sm != NULL);

	/* Exporters A, B, A, C: A keeps its port; C evicts B (the older). */
	memset(e, 0, sizeof(e));
	for (int i = 0; i < 4; i++) {
		e[i].family = 4;
		e[i].addr[0] = 10;
		e[i].addr[3] = (uint8_t)(i == 2 ? 1 : i + 1);
		e[i].src_port = 2055;
		e[i].payload = (const uint8_t *)"datagram";
		e[i].len = 8;
	}
	CHECK(srcmap_send(sm, plain, &ss, len, e, 4, &pc, &sent,
	    &bytes) == 0);
	CHECK_EQ_U64(sent, 4);
	CHECK_EQ_U64(bytes, 32);
	for (int i = 0; i < 4; i++)
		port[i] = from_port(fd);
	CHECK(port[0] == port[2]);
	CHECK(port[0] != port[1] && port[1] != port[3] && port[0] != port[3]);
	srcmap_get_counters(sm, &c);
	CHECK_EQ_U64(c.mapped, 4);
	CHECK_EQ_U64(c.sockets, 2);
	CHECK_EQ_U64(c.evicted, 1);
	CHECK_EQ_U64(c.fallbacks, 0);
	srcmap_close(sm);
	pacer_destroy(&pc);
	close(plain);
	close(fd);
}

TEST_MAIN(test_checksum, test_port_map)
