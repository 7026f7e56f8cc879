// RTP load generator for the media benchmarks (bench/lib/rtp-load.js builds it with `cc -O2`
// when a C compiler is there, and falls back to its Node sender otherwise).
//
// It plays the same phones as the Node sender, with the same traffic: every 20 ms one 172-byte
// PCMU packet (12-byte header, 160-byte payload given by the caller) per target, spread over 4
// slots of 5 ms (target i in slot i % 4), from a few sockets; the monitor targets are played from
// a separate socket that reads what comes back and checks sequence continuity and arrival
// lateness per SSRC. It is cheaper than Node because it hands the kernel a whole slot per
// socket in one sendmmsg(2) call and has no per-packet JavaScript: on a small machine the load
// generator must not take the CPU the media engine under test needs.
//
// Protocol: one command per line on stdin, one answer line on stdout.
//   open <sockets>                 → open <port>... monitor <port>
//   payload <320 hex digits>       → payload
//   target <port> <sock|m>         (no answer; one per target, in order)
//   targets                        → targets <count>          (end of the target list)
//   go                             → go
//   reset                          → reset
//   report                         → report {json}
//   stop                           → exits
// Linux only (sendmmsg, clock_nanosleep); the Node wrapper falls back when it does not build.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 4
#define SLOT_MS 5.0
#define PKT 172
#define BATCH 64
#define MAX_SOCKS 64
#define MAX_SSRC 64

typedef struct {
  struct sockaddr_in addr;
  int sock; // index into socks, or -1 for the monitor socket
  unsigned char buf[PKT];
  unsigned seq, ts;
} Target;

typedef struct {
  unsigned ssrc;
  unsigned lastSeq, firstTs;
  double firstAt;
  long received, gaps, late;
  double maxLate;
} Stream;

static int socks[MAX_SOCKS];
static int nsocks = 0;
static int monitor = -1;
static Target *targets = NULL;
static int ntargets = 0, captargets = 0;
static unsigned char payload[160];
static int running = 0;
static double t0 = 0;
static long slot = 0;
static Stream streams[MAX_SSRC];
static int nstreams = 0;
static struct {
  long slots, slotsLate, sent, sendErrors;
  double maxLate, since;
  struct rusage ru;
} c;

static double nowMs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double cpuMs(const struct rusage *r) {
  return (r->ru_utime.tv_sec + r->ru_stime.tv_sec) * 1e3 + (r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1e3;
}

static void resetCounters(void) {
  c.slots = c.slotsLate = c.sent = c.sendErrors = 0;
  c.maxLate = 0;
  c.since = nowMs();
  getrusage(RUSAGE_SELF, &c.ru);
  for (int i = 0; i < nstreams; i++) {
    streams[i].received = streams[i].gaps = streams[i].late = 0;
    streams[i].maxLate = 0;
  }
}

static int bindSock(int rcvbuf) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (s < 0) return -1;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) return -1;
  if (rcvbuf > 0) setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  return s;
}

static int portOf(int s) {
  struct sockaddr_in a;
  socklen_t l = sizeof a;
  getsockname(s, (struct sockaddr *)&a, &l);
  return ntohs(a.sin_port);
}

static void onMonitor(const unsigned char *m, ssize_t len) {
  if (len < 12 || (m[1] >= 192 && m[1] <= 223)) return;
  double now = nowMs();
  unsigned seq = (m[2] << 8) | m[3];
  unsigned ts = ((unsigned)m[4] << 24) | (m[5] << 16) | (m[6] << 8) | m[7];
  unsigned ssrc = ((unsigned)m[8] << 24) | (m[9] << 16) | (m[10] << 8) | m[11];
  Stream *st = NULL;
  for (int i = 0; i < nstreams; i++) if (streams[i].ssrc == ssrc) st = &streams[i];
  if (!st) {
    if (nstreams == MAX_SSRC) return;
    st = &streams[nstreams++];
    memset(st, 0, sizeof *st);
    st->ssrc = ssrc;
    st->lastSeq = seq;
    st->firstAt = now;
    st->firstTs = ts;
  } else if (((seq - st->lastSeq) & 0xffff) != 1) st->gaps++;
  st->lastSeq = seq;
  st->received++;
  // Expected arrival from the timestamp; the earliest arrival so far defines the baseline.
  double late = now - (st->firstAt + (double)(unsigned)(ts - st->firstTs) / 8);
  if (late < 0) {
    st->firstAt += late;
    late = 0;
  }
  if (late > 20) st->late++;
  if (late > st->maxLate) st->maxLate = late;
}

static void readMonitor(void) {
  unsigned char m[2048];
  for (;;) {
    ssize_t n = recv(monitor, m, sizeof m, MSG_DONTWAIT);
    if (n < 0) return;
    onMonitor(m, n);
  }
}

/** Sends slot k's packets: per socket, in batches of BATCH through sendmmsg. */
static void sendSlot(int k) {
  static struct mmsghdr msgs[MAX_SOCKS + 1][BATCH];
  static struct iovec iov[MAX_SOCKS + 1][BATCH];
  int count[MAX_SOCKS + 1] = {0};
  for (int i = k; i < ntargets; i += SLOTS) {
    Target *tg = &targets[i];
    int si = tg->sock < 0 ? nsocks : tg->sock;
    int fd = tg->sock < 0 ? monitor : socks[tg->sock];
    unsigned char *b = tg->buf;
    b[2] = tg->seq >> 8;
    b[3] = tg->seq & 0xff;
    b[4] = tg->ts >> 24;
    b[5] = tg->ts >> 16;
    b[6] = tg->ts >> 8;
    b[7] = tg->ts;
    tg->seq = (tg->seq + 1) & 0xffff;
    tg->ts += 160;
    int n = count[si];
    iov[si][n].iov_base = b;
    iov[si][n].iov_len = PKT;
    memset(&msgs[si][n], 0, sizeof msgs[si][n]);
    msgs[si][n].msg_hdr.msg_name = &tg->addr;
    msgs[si][n].msg_hdr.msg_namelen = sizeof tg->addr;
    msgs[si][n].msg_hdr.msg_iov = &iov[si][n];
    msgs[si][n].msg_hdr.msg_iovlen = 1;
    if (++count[si] == BATCH) {
      int done = 0;
      while (done < BATCH) {
        int r = sendmmsg(fd, &msgs[si][done], BATCH - done, 0);
        if (r <= 0) { c.sendErrors += BATCH - done; break; }
        done += r;
      }
      c.sent += done;
      count[si] = 0;
    }
  }
  for (int si = 0; si <= nsocks; si++) {
    int n = count[si];
    if (!n) continue;
    int fd = si == nsocks ? monitor : socks[si];
    int done = 0;
    while (done < n) {
      int r = sendmmsg(fd, &msgs[si][done], n - done, 0);
      if (r <= 0) { c.sendErrors += n - done; break; }
      done += r;
    }
    c.sent += done;
  }
}

static void tick(void) {
  double due = t0 + slot * SLOT_MS;
  double late = nowMs() - due;
  c.slots++;
  if (late > 20) c.slotsLate++;
  if (late > c.maxLate) c.maxLate = late;
  sendSlot(slot % SLOTS);
  slot++;
}

static void report(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double elapsed = nowMs() - c.since;
  long received = 0, gaps = 0, late = 0;
  double maxLate = 0;
  for (int i = 0; i < nstreams; i++) {
    received += streams[i].received;
    gaps += streams[i].gaps;
    late += streams[i].late;
    if (streams[i].maxLate > maxLate) maxLate = streams[i].maxLate;
  }
  printf("report {\"elapsedMs\":%.3f,\"sent\":%ld,\"sendErrors\":%ld,\"slots\":%ld,\"slotsLate\":%ld,\"maxSlotLateMs\":%.3f,\"cpuPct\":%.3f,"
         "\"returnedRead\":0,\"monitor\":{\"streams\":%d,\"received\":%ld,\"gaps\":%ld,\"lateArrivals\":%ld,\"maxArrivalLateMs\":%.3f}}\n",
         elapsed, c.sent, c.sendErrors, c.slots, c.slotsLate, c.maxLate, elapsed > 0 ? 100 * (cpuMs(&ru) - cpuMs(&c.ru)) / elapsed : 0,
         nstreams, received, gaps, late, maxLate);
  fflush(stdout);
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/** Handles one command line; returns 0 to stop. */
static int command(char *line) {
  if (!strncmp(line, "open ", 5)) {
    nsocks = atoi(line + 5);
    if (nsocks < 1 || nsocks > MAX_SOCKS) { printf("error bad socket count\n"); fflush(stdout); return 1; }
    // The phones do not read what the engine sends back: a small receive buffer, the kernel drops the rest.
    for (int i = 0; i < nsocks; i++) if ((socks[i] = bindSock(4096)) < 0) { printf("error socket: %s\n", strerror(errno)); fflush(stdout); return 1; }
    if ((monitor = bindSock(0)) < 0) { printf("error socket: %s\n", strerror(errno)); fflush(stdout); return 1; }
    printf("open");
    for (int i = 0; i < nsocks; i++) printf(" %d", portOf(socks[i]));
    printf(" monitor %d\n", portOf(monitor));
  } else if (!strncmp(line, "payload ", 8)) {
    for (int i = 0; i < 160; i++) payload[i] = (hexval(line[8 + 2 * i]) << 4) | hexval(line[9 + 2 * i]);
    printf("payload\n");
  } else if (!strncmp(line, "target ", 7)) {
    int port;
    char which[16];
    if (sscanf(line + 7, "%d %15s", &port, which) != 2) return 1;
    if (ntargets == captargets) {
      captargets = captargets ? 2 * captargets : 1024;
      targets = realloc(targets, captargets * sizeof *targets);
    }
    Target *tg = &targets[ntargets];
    memset(tg, 0, sizeof *tg);
    tg->addr.sin_family = AF_INET;
    tg->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    tg->addr.sin_port = htons(port);
    tg->sock = which[0] == 'm' ? -1 : atoi(which) % nsocks;
    tg->buf[0] = 0x80;
    tg->buf[1] = 0;
    unsigned ssrc = 0x10000000u + ntargets;
    tg->buf[8] = ssrc >> 24;
    tg->buf[9] = ssrc >> 16;
    tg->buf[10] = ssrc >> 8;
    tg->buf[11] = ssrc;
    memcpy(tg->buf + 12, payload, 160);
    tg->seq = ntargets & 0xffff;
    tg->ts = ntargets * 1000u;
    ntargets++;
    return 1;
  } else if (!strcmp(line, "targets")) {
    printf("targets %d\n", ntargets);
  } else if (!strcmp(line, "go")) {
    running = 1;
    t0 = nowMs();
    slot = 0;
    resetCounters();
    printf("go\n");
  } else if (!strcmp(line, "reset")) {
    resetCounters();
    printf("reset\n");
  } else if (!strcmp(line, "report")) {
    report();
    return 1;
  } else if (!strcmp(line, "stop")) {
    return 0;
  } else {
    printf("error unknown command\n");
  }
  fflush(stdout);
  return 1;
}

int main(void) {
  static char in[1 << 16];
  size_t have = 0;
  for (;;) {
    if (running) {
      // Every slot that is due, then wait for the next one (or a command, or the monitor).
      while (nowMs() >= t0 + slot * SLOT_MS) tick();
    }
    int timeout = -1;
    if (running) {
      double wait = t0 + slot * SLOT_MS - nowMs();
      timeout = wait < 0 ? 0 : (int)wait;
    }
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = monitor, .events = POLLIN}};
    int np = monitor >= 0 ? 2 : 1;
    int r = poll(p, np, timeout);
    if (r < 0 && errno != EINTR) return 1;
    if (r > 0 && np == 2 && (p[1].revents & POLLIN)) readMonitor();
    if (r > 0 && (p[0].revents & (POLLIN | POLLHUP))) {
      ssize_t n = read(0, in + have, sizeof in - 1 - have);
      if (n <= 0) return 0; // the wrapper went away
      have += n;
      char *start = in;
      char *nl;
      while ((nl = memchr(start, '\n', in + have - start)) != NULL) {
        *nl = 0;
        if (!command(start)) return 0;
        start = nl + 1;
      }
      have = in + have - start;
      memmove(in, start, have);
      if (have == sizeof in - 1) have = 0; // a line longer than the buffer: drop it
    }
    if (running) {
      // poll's timeout is in whole milliseconds: sleep the rest up to the due time.
      double wait = t0 + slot * SLOT_MS - nowMs();
      if (wait > 0 && wait < 1) {
        struct timespec ts = {0, (long)(wait * 1e6)};
        nanosleep(&ts, NULL);
      }
    }
  }
}
