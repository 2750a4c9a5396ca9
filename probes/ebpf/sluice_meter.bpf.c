/*
 * Sluice eBPF meter: per-host egress counters and a source block list, in the kernel.
 *
 * Capture side (probes/ebpf/). Compiled by bcc when the sensor starts (see loader.py); two
 * entry points share one accounting function:
 *   sluice_xdp  XDP, on a SPAN/TAP port (or a gateway's LAN-facing interface, ingress)
 *   sluice_tc   TC (tcx link, or a clsact direct-action filter), on a gateway interface
 *
 * What is counted: IPv4 and IPv6 packets whose source is inside home_net and whose destination
 * is outside it and not multicast/broadcast ("outbound", DESIGN.md "Direction"). Bytes are IP
 * bytes (IP header + payload, from the IP length fields), so VLAN tags, Ethernet padding and
 * FCS never change a host's volume and the pcap meter can count the same way. A GSO skb (TC
 * only) counts as the segments it will leave as, each with its own headers.
 *
 * Maps (the loader pins the first five; pin names carry a layout version):
 *   hosts     lru_percpu_hash  src address                   -> {packets, bytes}
 *   pairs     lru_percpu_hash  (src, destination /24 or /64) -> {packets, bytes}
 *   blocked   hash             src address                   -> packets dropped
 *   blockctl  array[1]         a copy of a short block list, or "look it up", or "empty"
 *   stats     percpu_array     SLUICE_STAT_* -> packets
 *   config    array[1]         home_net prefixes (rewritten by the loader at every start)
 *
 * Cost matters more than elegance here: every packet of the site passes through this code.
 * Each map call is a real function call in the kernel (and returns are expensive on CPUs with
 * return-thunk mitigations), so: home_net is a short prefix list scanned in registers, not an
 * LPM trie (two trie walks cost more than the scan of a typical list); the block list is
 * scanned from a copy in `blockctl` while it has at most SLUICE_BLOCK_SCAN entries (the usual
 * case: a few hosts under a verdict) and only a hit, or a longer list, costs a hash lookup;
 * one stats slot is bumped per packet (array lookups are inlined by the verifier).
 *
 * Addresses in keys are 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d, RFC 4291
 * 2.5.5.2) so one key type serves both families.
 *
 * Only stable UAPI headers are used (linux/bpf.h, if_ether.h, ip.h, ipv6.h, in.h, pkt_cls.h):
 * the build tree may belong to another kernel than the running one (see DESIGN.md).
 *
 * The loader passes: SLUICE_MAX_HOSTS, SLUICE_MAX_PAIRS, SLUICE_MAX_BLOCKED, and the pin paths
 * SLUICE_PIN_HOSTS, _PAIRS, _BLOCKED, _BLOCKCTL, _STATS (string literals), or SLUICE_NO_PIN.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/pkt_cls.h>

#define SLUICE_ETH_P_8021Q 0x8100
#define SLUICE_ETH_P_8021AD 0x88A8
/* QinQ at most: a SPAN port rarely carries more, and the verifier needs a bound. */
#define SLUICE_MAX_VLAN_TAGS 2
/* Bytes of headers TC makes linear before parsing: Ethernet + 2 VLAN + IPv6 + TCP with options. */
#define SLUICE_TC_PULL_LEN 128
#define SLUICE_IPV4_FRAG_OFFSET_MASK 0x1FFF
/* home_net prefixes per family; the loader refuses more (MAX_HOME_NETS_PER_FAMILY). */
#define SLUICE_MAX_HOME_NETS 32
/* Block lists up to this long are scanned from `blockctl` (BLOCK_SCAN in counters.py). */
#define SLUICE_BLOCK_SCAN 16

/* blockctl.mode */
#define SLUICE_BLOCK_NONE 0
#define SLUICE_BLOCK_SCAN_LIST 1
#define SLUICE_BLOCK_LOOKUP 2

/* Outcome of one packet: exactly one slot per packet, so "seen" is their sum. */
enum sluice_stat {
    SLUICE_STAT_NOT_IP = 0,    /* ARP, LLDP, ... */
    SLUICE_STAT_MALFORMED = 1, /* cut or inconsistent L2/L3 header */
    SLUICE_STAT_NOT_OUTBOUND = 2,
    SLUICE_STAT_COUNTED = 3,
    SLUICE_STAT_DROPPED = 4,   /* source on the block list */
    SLUICE_STAT_MAP_FULL = 5,  /* extra: a counted packet whose counter could not be created */
    SLUICE_STAT_COUNT = 6,
};

struct sluice_addr {
    __u8 a[16];
};

/* 24 bytes, not 32: the hash and compare of every lookup cost less (~20 ns per packet). The
 * destination network is 8 bytes: the /64 of an IPv6 address, or bytes 8-15 of the
 * IPv4-mapped address with the host byte zeroed (/24); the source says which family it is. */
struct sluice_pair {
    struct sluice_addr src;
    __u8 dst_net[8];
};

struct sluice_count {
    __u64 packets;
    __u64 bytes;
};

struct sluice_net4 {
    __be32 net;
    __be32 mask;
};

struct sluice_net6 {
    __u64 net[2]; /* address words as loaded from memory (network byte order inside) */
    __u64 mask[2];
};

struct sluice_config {
    __u32 n4;
    __u32 n6;
    struct sluice_net4 v4[SLUICE_MAX_HOME_NETS];
    struct sluice_net6 v6[SLUICE_MAX_HOME_NETS];
};

/* Written by the loader after every change of `blocked`, from the contents of `blocked`. */
struct sluice_blockctl {
    __u32 mode;
    __u32 n;
    __u64 addr[SLUICE_BLOCK_SCAN][2]; /* struct sluice_addr as two words */
};

struct sluice_vlan_hdr {
    __be16 tci;
    __be16 encapsulated_proto;
};

/* One parsed packet: what the accounting needs, nothing more. */
struct sluice_pkt {
    struct sluice_addr src;
    struct sluice_addr dst;
    __u32 ip_len;  /* IP header + payload, from the header */
    __u32 hdr_len; /* IP header (+ TCP/UDP header when known): repeated in every GSO segment */
    __u32 l3_off;  /* offset of the IP header from the start of the frame */
    __u8 v4;
    __u8 multicast;
};

/* SLUICE_NO_PIN: a trial build (probe_unavailable_reason) that must leave nothing on bpffs. */
#ifdef SLUICE_NO_PIN
#define SLUICE_MAP(type, key, value, name, size, pin) BPF_TABLE(type, key, value, name, size)
#else
#define SLUICE_MAP(type, key, value, name, size, pin) \
    BPF_TABLE_PINNED(type, key, value, name, size, pin)
#endif

SLUICE_MAP("lru_percpu_hash", struct sluice_addr, struct sluice_count, hosts, SLUICE_MAX_HOSTS,
           SLUICE_PIN_HOSTS);
SLUICE_MAP("lru_percpu_hash", struct sluice_pair, struct sluice_count, pairs, SLUICE_MAX_PAIRS,
           SLUICE_PIN_PAIRS);
SLUICE_MAP("hash", struct sluice_addr, __u64, blocked, SLUICE_MAX_BLOCKED, SLUICE_PIN_BLOCKED);
SLUICE_MAP("array", __u32, struct sluice_blockctl, blockctl, 1, SLUICE_PIN_BLOCKCTL);
SLUICE_MAP("percpu_array", __u32, __u64, stats, SLUICE_STAT_COUNT, SLUICE_PIN_STATS);
BPF_ARRAY(config, struct sluice_config, 1);

static __always_inline void sluice_stat(__u32 which)
{
    __u64 *v = stats.lookup(&which);
    if (v)
        *v += 1;
}

static __always_inline void sluice_add(struct sluice_count *c, __u64 packets, __u64 bytes)
{
    c->packets += packets;
    c->bytes += bytes;
}

static __always_inline int sluice_in_home(const struct sluice_config *cfg,
                                          const struct sluice_pkt *pkt,
                                          const struct sluice_addr *addr)
{
    if (pkt->v4) {
        __be32 a;
        __builtin_memcpy(&a, &addr->a[12], 4);
        for (int i = 0; i < SLUICE_MAX_HOME_NETS; i++) {
            if (i >= cfg->n4)
                break;
            if ((a & cfg->v4[i].mask) == cfg->v4[i].net)
                return 1;
        }
        return 0;
    }
    __u64 w[2];
    __builtin_memcpy(w, addr->a, 16);
    for (int i = 0; i < SLUICE_MAX_HOME_NETS; i++) {
        if (i >= cfg->n6)
            break;
        if ((w[0] & cfg->v6[i].mask[0]) == cfg->v6[i].net[0] &&
            (w[1] & cfg->v6[i].mask[1]) == cfg->v6[i].net[1])
            return 1;
    }
    return 0;
}

/* Could `addr` be on the block list? Exact for a scanned list; "ask the map" for a long one. */
static __always_inline int sluice_maybe_blocked(const struct sluice_blockctl *bc,
                                                const struct sluice_addr *addr)
{
    if (bc->mode == SLUICE_BLOCK_LOOKUP)
        return 1;
    if (bc->mode != SLUICE_BLOCK_SCAN_LIST)
        return 0;
    __u64 w[2];
    __builtin_memcpy(w, addr->a, 16);
    for (int i = 0; i < SLUICE_BLOCK_SCAN; i++) {
        if (i >= bc->n)
            break;
        if (w[0] == bc->addr[i][0] && w[1] == bc->addr[i][1])
            return 1;
    }
    return 0;
}

static __always_inline void sluice_map_v4(struct sluice_addr *out, __be32 addr)
{
    __builtin_memset(out->a, 0, 10);
    out->a[10] = 0xff;
    out->a[11] = 0xff;
    __builtin_memcpy(&out->a[12], &addr, 4);
}

/* Parse Ethernet (+VLAN) and IP. Returns -1 on success, else the SLUICE_STAT_* to count. */
static __always_inline int sluice_parse(void *data, void *data_end, struct sluice_pkt *pkt)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return SLUICE_STAT_MALFORMED;
    __be16 proto = eth->h_proto;
    void *cursor = eth + 1;

#pragma unroll
    for (int i = 0; i < SLUICE_MAX_VLAN_TAGS; i++) {
        if (proto != bpf_htons(SLUICE_ETH_P_8021Q) && proto != bpf_htons(SLUICE_ETH_P_8021AD))
            break;
        struct sluice_vlan_hdr *vlan = cursor;
        if ((void *)(vlan + 1) > data_end)
            return SLUICE_STAT_MALFORMED;
        proto = vlan->encapsulated_proto;
        cursor = vlan + 1;
    }

    __u8 l4proto;
    void *l4;
    int fragment = 0;
    pkt->l3_off = cursor - data;
    if (proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = cursor;
        if ((void *)(ip + 1) > data_end)
            return SLUICE_STAT_MALFORMED;
        __u32 ihl = ip->ihl * 4;
        if (ihl < sizeof(*ip))
            return SLUICE_STAT_MALFORMED;
        sluice_map_v4(&pkt->src, ip->saddr);
        sluice_map_v4(&pkt->dst, ip->daddr);
        pkt->ip_len = bpf_ntohs(ip->tot_len);
        pkt->hdr_len = ihl;
        pkt->v4 = 1;
        __u8 first = pkt->dst.a[12];
        pkt->multicast = (first >= 224 && first <= 239) || ip->daddr == 0xffffffff;
        l4proto = ip->protocol;
        l4 = cursor + ihl;
        fragment = (bpf_ntohs(ip->frag_off) & SLUICE_IPV4_FRAG_OFFSET_MASK) != 0;
    } else if (proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = cursor;
        if ((void *)(ip6 + 1) > data_end)
            return SLUICE_STAT_MALFORMED;
        __builtin_memcpy(pkt->src.a, &ip6->saddr, 16);
        __builtin_memcpy(pkt->dst.a, &ip6->daddr, 16);
        pkt->ip_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
        pkt->hdr_len = sizeof(*ip6);
        pkt->multicast = pkt->dst.a[0] == 0xff;
        /* Extension headers are not walked: they only matter for the GSO header estimate. */
        l4proto = ip6->nexthdr;
        l4 = ip6 + 1;
    } else {
        return SLUICE_STAT_NOT_IP;
    }

    if (!fragment) {
        if (l4proto == IPPROTO_TCP) {
            /* doff is the high nibble of byte 12 of the TCP header (RFC 9293 3.1). */
            __u8 *doff = l4 + 12;
            if ((void *)(doff + 1) <= data_end)
                pkt->hdr_len += (*doff >> 4) * 4;
        } else if (l4proto == IPPROTO_UDP) {
            pkt->hdr_len += 8;
        }
    }
    return -1;
}

/*
 * Count one packet, or `segs` wire packets for a GSO skb of `skb_len` bytes from the MAC header.
 * Returns 1 when the packet must be dropped (source on the block list).
 */
static __always_inline int sluice_account(void *data, void *data_end, __u32 segs, __u32 skb_len)
{
    struct sluice_pkt pkt = {};
    int bad = sluice_parse(data, data_end, &pkt);
    if (bad >= 0) {
        sluice_stat(bad);
        return 0;
    }

    __u32 zero = 0;
    struct sluice_blockctl *bc = blockctl.lookup(&zero);
    if (bc && sluice_maybe_blocked(bc, &pkt.src)) {
        /* The map is the authority (and holds the drop count): a host unblocked a moment
         * ago may still be in the copy. */
        __u64 *drops = blocked.lookup(&pkt.src);
        if (drops) {
            __sync_fetch_and_add(drops, segs);
            sluice_stat(SLUICE_STAT_DROPPED);
            return 1;
        }
    }

    struct sluice_config *cfg = config.lookup(&zero);
    if (!cfg || pkt.multicast || !sluice_in_home(cfg, &pkt, &pkt.src) ||
        sluice_in_home(cfg, &pkt, &pkt.dst)) {
        sluice_stat(SLUICE_STAT_NOT_OUTBOUND);
        return 0;
    }

    __u64 bytes = pkt.ip_len;
    if (segs > 1 && skb_len > pkt.l3_off) {
        /* A GSO skb leaves as `segs` packets, each with its own copy of the headers. */
        bytes = (__u64)(skb_len - pkt.l3_off) + (__u64)(segs - 1) * pkt.hdr_len;
    }

    struct sluice_count first = {.packets = segs, .bytes = bytes};
    struct sluice_count *c = hosts.lookup(&pkt.src);
    if (c) {
        sluice_add(c, segs, bytes);
    } else if (hosts.update(&pkt.src, &first) != 0) {
        sluice_stat(SLUICE_STAT_MAP_FULL);
    }

    struct sluice_pair pair;
    pair.src = pkt.src;
    if (pkt.v4) {
        __builtin_memcpy(pair.dst_net, &pkt.dst.a[8], 8);
        pair.dst_net[7] = 0; /* IPv4 /24 */
    } else {
        __builtin_memcpy(pair.dst_net, pkt.dst.a, 8); /* IPv6 /64 */
    }
    c = pairs.lookup(&pair);
    if (c) {
        sluice_add(c, segs, bytes);
    } else if (pairs.update(&pair, &first) != 0) {
        sluice_stat(SLUICE_STAT_MAP_FULL);
    }

    sluice_stat(SLUICE_STAT_COUNTED);
    return 0;
}

int sluice_xdp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    /* XDP sees wire packets (no GSO): one packet, IP bytes from the header. */
    return sluice_account(data, data_end, 1, 0) ? XDP_DROP : XDP_PASS;
}

int sluice_tc(struct __sk_buff *skb)
{
    __u32 len = skb->len;
    __u32 linear = skb->data_end - skb->data;
    /* Headers of a non-linear skb may sit in page fragments: make them readable (TC only). */
    if (linear < SLUICE_TC_PULL_LEN && len > linear)
        bpf_skb_pull_data(skb, len < SLUICE_TC_PULL_LEN ? len : SLUICE_TC_PULL_LEN);
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;

    /* gso_segs is 0 or 1 for an ordinary skb; skb->len counts from the MAC header here. */
    __u32 segs = skb->gso_segs;
    if (segs == 0)
        segs = 1;
    /* TC_ACT_UNSPEC lets later tcx programs / filters run; the packet passes by default. */
    return sluice_account(data, data_end, segs, len) ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}
