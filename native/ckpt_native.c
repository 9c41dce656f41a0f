/*
 * ckpt's native part: the two things Node cannot do.
 *
 *  - inotify with its event kinds kept (IN_CLOSE_WRITE, IN_MOVED_TO, IN_OPEN...): fs.watch
 *    folds them all into 'rename' and 'change'. One inotify descriptor per Inotify object,
 *    polled on the event loop (uv_poll); the raw event records go to JavaScript as one Buffer
 *    per read, parsed there (src/native/inotify.ts).
 *  - posix_spawn: a vfork-style start (CLONE_VFORK in glibc) that does not copy the page
 *    tables of the whole daemon as Node's fork does. The child leads its own process group
 *    (POSIX_SPAWN_SETPGROUP), has every signal at its default disposition and an empty mask
 *    (as libuv gives its children), stdin on /dev/null and stdout/stderr on pipes. Its exit is
 *    seen through a pidfd polled on the event loop and reaped with waitpid on that pid only,
 *    so libuv's own SIGCHLD handling (which waits for its own children by pid) is not touched.
 *
 * Plain node_api.h (N-API version 8), so one build works across Node 20 patch releases.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

extern char **environ;

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "ckpt native: N-API call failed");  \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

/* An Error like Node's for a system call: message "CODE, what: text", .code, .errno. */
static napi_value errno_error(napi_env env, int err, const char *what) {
  napi_value msg, code, error;
  char text[256];
  const char *name = NULL;
  switch (err) {
    case ENOENT: name = "ENOENT"; break;
    case EACCES: name = "EACCES"; break;
    case ENOTDIR: name = "ENOTDIR"; break;
    case ENOSPC: name = "ENOSPC"; break;
    case EMFILE: name = "EMFILE"; break;
    case ENFILE: name = "ENFILE"; break;
    case ENOEXEC: name = "ENOEXEC"; break;
    case E2BIG: name = "E2BIG"; break;
    case EPERM: name = "EPERM"; break;
    case EINVAL: name = "EINVAL"; break;
    case ENOMEM: name = "ENOMEM"; break;
    case EAGAIN: name = "EAGAIN"; break;
    default: name = "EUNKNOWN"; break;
  }
  snprintf(text, sizeof text, "%s, %s: %s", name, what, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_value errnum;
  napi_create_int32(env, -err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char *what) {
  napi_throw(env, errno_error(env, err, what));
  return NULL;
}

/* A JS string argument as a malloc'd C string (NULL and a thrown error on failure). */
static char *get_string(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "ckpt native: expected a string");
    return NULL;
  }
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  if (strlen(s) != len) { /* an embedded NUL: exec would cut the string there */
    free(s);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "ckpt native: string contains a NUL byte");
    return NULL;
  }
  return s;
}

static void free_vec(char **v) {
  if (v == NULL) return;
  for (char **p = v; *p != NULL; p++) free(*p);
  free(v);
}

/* A JS array of strings as a NULL-terminated vector. */
static char **get_vec(napi_env env, napi_value arr) {
  uint32_t n = 0;
  if (napi_get_array_length(env, arr, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "ckpt native: expected an array of strings");
    return NULL;
  }
  char **v = calloc((size_t)n + 1, sizeof(char *));
  if (v == NULL) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    napi_get_element(env, arr, i, &item);
    v[i] = get_string(env, item);
    if (v[i] == NULL) {
      free_vec(v);
      return NULL;
    }
  }
  return v;
}

/* ------------------------------------------------------------------------------------------ */
/* Callbacks from a uv_poll: one JS function, called in its own handle scope.                  */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  int fd;
  int closing;
} poller_t;

static void poller_closed(uv_handle_t *h) {
  free(h->data);
}

static void poller_close(poller_t *p) {
  if (p->closing) return;
  p->closing = 1;
  /* uv_poll_stop takes the descriptor out of epoll at once, so it can be closed now: a caller
     that closed a watch sees its inotify descriptor gone when close() returns. */
  uv_poll_stop(&p->poll);
  close(p->fd);
  p->fd = -1;
  napi_delete_reference(p->env, p->callback);
  uv_close((uv_handle_t *)&p->poll, poller_closed);
}

static void call_js(poller_t *p, size_t argc, napi_value *argv) {
  napi_env env = p->env;
  napi_value fn, recv, result;
  napi_get_reference_value(env, p->callback, &fn);
  napi_get_global(env, &recv); /* make_callback wants an object as `this` */
  napi_async_context ctx;
  napi_value name;
  napi_create_string_utf8(env, "ckpt-native", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &ctx);
  /* make_callback: process.nextTick queues and promise jobs run after it, as after any I/O. */
  napi_status st = napi_make_callback(env, ctx, recv, fn, argc, argv, &result);
  if (st == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_async_destroy(env, ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* inotify                                                                                     */

#define EVENT_BUF (64 * 1024)

static void inotify_readable(uv_poll_t *h, int status, int events) {
  poller_t *p = (poller_t *)h->data;
  (void)events;
  if (p->closing) return;
  napi_handle_scope scope;
  napi_open_handle_scope(p->env, &scope);
  if (status < 0) {
    napi_value arg;
    napi_get_null(p->env, &arg);
    call_js(p, 1, &arg);
    napi_close_handle_scope(p->env, scope);
    return;
  }
  /* One read a wake-up: the queue is read again at the next poll, so one busy folder cannot
     hold the loop. 64 KB holds about 2,000 events with short names. */
  char buf[EVENT_BUF] __attribute__((aligned(__alignof__(struct inotify_event))));
  ssize_t n = read(p->fd, buf, sizeof buf);
  if (n > 0) {
    napi_value argv[2];
    void *data;
    napi_create_buffer_copy(p->env, (size_t)n, buf, &data, &argv[0]);
    /* The kernel fills a read with every record that fits, so a read that left room for the
       longest one (a NAME_MAX name, its NUL, padding) emptied the queue: the second argument.
       After an overflow, events are complete again from the next read on (kernel-readiness.ts). */
    napi_get_boolean(p->env, (size_t)n + sizeof(struct inotify_event) + NAME_MAX + 1 <= sizeof buf, &argv[1]);
    call_js(p, 2, argv);
  }
  napi_close_handle_scope(p->env, scope);
}

/* inotifyOpen(callback) -> handle (external). */
static napi_value inotify_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], ext;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "inotify_init1");
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  poller_t *p = calloc(1, sizeof *p);
  p->env = env;
  p->fd = fd;
  p->poll.data = p;
  if (uv_poll_init(loop, &p->poll, fd) != 0) {
    close(fd);
    free(p);
    return throw_errno(env, EINVAL, "uv_poll_init");
  }
  napi_create_reference(env, argv[0], 1, &p->callback);
  uv_poll_start(&p->poll, UV_READABLE, inotify_readable);
  CHECK(napi_create_external(env, p, NULL, NULL, &ext));
  return ext;
}

static poller_t *get_poller(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "ckpt native: not a handle");
    return NULL;
  }
  return (poller_t *)p;
}

/* inotifyAdd(handle, path, mask) -> wd */
static napi_value inotify_add(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  poller_t *p = get_poller(env, argv[0]);
  if (p == NULL) return NULL;
  if (p->closing) return throw_errno(env, EINVAL, "inotify_add_watch on a closed handle");
  char *path = get_string(env, argv[1]);
  if (path == NULL) return NULL;
  uint32_t mask = 0;
  napi_get_value_uint32(env, argv[2], &mask);
  int wd = inotify_add_watch(p->fd, path, mask);
  int err = errno;
  free(path);
  if (wd < 0) return throw_errno(env, err, "inotify_add_watch");
  CHECK(napi_create_int32(env, wd, &out));
  return out;
}

/* inotifyRemove(handle, wd): EINVAL (already gone) is ignored. */
static napi_value inotify_remove(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  poller_t *p = get_poller(env, argv[0]);
  if (p == NULL || p->closing) return NULL;
  int32_t wd = 0;
  napi_get_value_int32(env, argv[1], &wd);
  inotify_rm_watch(p->fd, wd);
  return NULL;
}

/* close(handle): inotify handle or exit watch alike. */
static napi_value handle_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  poller_t *p = get_poller(env, argv[0]);
  if (p != NULL) poller_close(p);
  return NULL;
}

/* ref(handle, on): whether the handle keeps the event loop alive. */
static napi_value handle_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  poller_t *p = get_poller(env, argv[0]);
  bool on = true;
  napi_get_value_bool(env, argv[1], &on);
  if (p != NULL && !p->closing) {
    if (on) uv_ref((uv_handle_t *)&p->poll);
    else uv_unref((uv_handle_t *)&p->poll);
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* posix_spawn                                                                                 */

typedef struct {
  poller_t base;
  pid_t pid;
} exit_watch_t;

static void exit_readable(uv_poll_t *h, int status, int events) {
  exit_watch_t *w = (exit_watch_t *)h->data;
  (void)status;
  (void)events;
  if (w->base.closing) return;
  int st = 0;
  pid_t r;
  do {
    r = waitpid(w->pid, &st, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return; /* not yet (a spurious wake-up) */
  napi_env env = w->base.env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[2];
  if (r < 0) {
    /* ECHILD: someone else reaped it. Reported as an unknown end. */
    napi_get_null(env, &argv[0]);
    napi_get_null(env, &argv[1]);
  } else if (WIFEXITED(st)) {
    napi_create_int32(env, WEXITSTATUS(st), &argv[0]);
    napi_get_null(env, &argv[1]);
  } else {
    napi_get_null(env, &argv[0]);
    napi_create_int32(env, WIFSIGNALED(st) ? WTERMSIG(st) : 0, &argv[1]);
  }
  call_js(&w->base, 2, argv);
  poller_close(&w->base);
  napi_close_handle_scope(env, scope);
}

/*
 * Tries each PATH entry as execvp does: the first that is not ENOENT/ENOTDIR/EACCES wins.
 * An entry that does not hold the program is ruled out with faccessat first, not by spawning:
 * a posix_spawn of a missing file still clones a child, which fails its exec, exits and is
 * reaped, and `true` in /usr/bin came fourth in a usual PATH: three wasted starts per run,
 * which halved the daemon's CPU per `true` (1.9 -> 1.0 ms, docs/performance.md).
 */
static int spawn_search(pid_t *pid, const char *file, const char *path_var,
                        const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
                        char **argv, char **envp) {
  if (strchr(file, '/') != NULL) return posix_spawn(pid, file, fa, attr, argv, envp);
  const char *search = path_var != NULL ? path_var : "/usr/local/bin:/usr/bin:/bin";
  int last = ENOENT, saw_eacces = 0;
  size_t flen = strlen(file);
  const char *s = search;
  for (;;) {
    const char *e = strchr(s, ':');
    size_t dlen = e != NULL ? (size_t)(e - s) : strlen(s);
    char full[PATH_MAX];
    if (dlen + flen + 2 <= sizeof full) {
      if (dlen == 0) {
        memcpy(full, file, flen + 1); /* an empty entry is the current folder */
      } else {
        memcpy(full, s, dlen);
        full[dlen] = '/';
        memcpy(full + dlen + 1, file, flen + 1);
      }
      int r;
      if (faccessat(AT_FDCWD, full, X_OK, AT_EACCESS) != 0 && (errno == ENOENT || errno == ENOTDIR || errno == EACCES)) {
        r = errno;
      } else {
        r = posix_spawn(pid, full, fa, attr, argv, envp);
        if (r == 0) return 0;
      }
      if (r == EACCES) saw_eacces = 1;
      else if (r != ENOENT && r != ENOTDIR) return r;
      last = r;
    }
    if (e == NULL) break;
    s = e + 1;
  }
  return saw_eacces ? EACCES : last;
}

/*
 * Starts `file` (searched in path_var) with stdin on /dev/null and stdout/stderr on new pipes,
 * leading its own process group. Makes no N-API call, so it runs on a thread-pool thread too.
 * 0 and the pid and read ends, or an errno and what failed.
 */
static int start_child(const char *file, char **argv, char **envp, const char *cwd, const char *path_var,
                       pid_t *pid, int *out_fd, int *err_fd, const char **what) {
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    for (int i = 0; i < 2; i++) {
      if (out[i] >= 0) close(out[i]);
      if (err[i] >= 0) close(err[i]);
    }
    *what = "pipe2";
    return e;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  /* dup2 clears close-on-exec on the copy; the originals close at exec. */
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  if (cwd != NULL) posix_spawn_file_actions_addchdir_np(&fa, cwd);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_USEVFORK);
  int r = spawn_search(pid, file, path_var, &fa, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(out[1]);
  close(err[1]);
  if (r != 0) {
    close(out[0]);
    close(err[0]);
    *what = file;
    return r;
  }
  *out_fd = out[0];
  *err_fd = err[0];
  return 0;
}

static napi_value started_array(napi_env env, pid_t pid, int out, int err) {
  napi_value arr, v;
  napi_create_array_with_length(env, 3, &arr);
  napi_create_int32(env, pid, &v);
  napi_set_element(env, arr, 0, v);
  napi_create_int32(env, out, &v);
  napi_set_element(env, arr, 1, v);
  napi_create_int32(env, err, &v);
  napi_set_element(env, arr, 2, v);
  return arr;
}

/* The arguments of spawnAsync, copied out of JavaScript. */
typedef struct {
  char *file, *cwd, *path_var, **argv, **envp;
} spawn_args_t;

static void free_args(spawn_args_t *a) {
  free(a->file);
  free(a->cwd);
  free(a->path_var);
  free_vec(a->argv);
  free_vec(a->envp);
}

/* 0, or -1 with an exception pending. */
static int get_args(napi_env env, napi_value *args, spawn_args_t *a) {
  napi_valuetype t;
  memset(a, 0, sizeof *a);
  if ((a->file = get_string(env, args[0])) == NULL) return -1;
  if ((a->argv = get_vec(env, args[1])) == NULL) return -1;
  if ((a->envp = get_vec(env, args[2])) == NULL) return -1;
  napi_typeof(env, args[3], &t);
  if (t == napi_string && (a->cwd = get_string(env, args[3])) == NULL) return -1;
  napi_typeof(env, args[4], &t);
  if (t == napi_string && (a->path_var = get_string(env, args[4])) == NULL) return -1;
  return 0;
}

/*
 * spawnAsync(file, argv[], env[], cwd|null, pathVar|null, callback(err, [pid, outFd, errFd]))
 * Errors (ENOENT, EACCES, a missing cwd...) come with their code; bad arguments are thrown.
 * The start runs on a thread of libuv's pool. posix_spawn with CLONE_VFORK holds the calling
 * thread until the child has exec'd (0.5-1.5 ms for `true` on 2 busy cores), so starting from
 * the event loop's thread ran one start at a time: 4 slots reached 0.26x `xargs -P4`, which
 * forks and goes on (docs/performance.md).
 */
typedef struct {
  napi_async_work work;
  napi_ref callback;
  spawn_args_t a;
  pid_t pid;
  int out, err, result;
  const char *what;
  char what_copy[PATH_MAX];
} spawn_job_t;

static void spawn_execute(napi_env env, void *data) {
  spawn_job_t *j = (spawn_job_t *)data;
  (void)env;
  j->result = start_child(j->a.file, j->a.argv, j->a.envp, j->a.cwd, j->a.path_var, &j->pid, &j->out, &j->err, &j->what);
  /* `what` may point into j->a, which is freed before the callback runs */
  if (j->result != 0) snprintf(j->what_copy, sizeof j->what_copy, "%s", j->what != NULL ? j->what : "spawn");
}

static void spawn_complete(napi_env env, napi_status status, void *data) {
  spawn_job_t *j = (spawn_job_t *)data;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value fn, recv, argv[2], result;
  napi_get_reference_value(env, j->callback, &fn);
  napi_get_global(env, &recv);
  if (status != napi_ok) {
    argv[0] = errno_error(env, EINVAL, "spawn (cancelled)");
    napi_get_null(env, &argv[1]);
  } else if (j->result != 0) {
    argv[0] = errno_error(env, j->result, j->what_copy);
    napi_get_null(env, &argv[1]);
  } else {
    napi_get_null(env, &argv[0]);
    argv[1] = started_array(env, j->pid, j->out, j->err);
  }
  napi_delete_reference(env, j->callback);
  napi_delete_async_work(env, j->work);
  free_args(&j->a);
  free(j);
  /* make_callback: process.nextTick queues and promise jobs run after it, as after any I/O. */
  napi_async_context ctx;
  napi_value name;
  napi_create_string_utf8(env, "ckpt-spawn", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &ctx);
  if (napi_make_callback(env, ctx, recv, fn, 2, argv, &result) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_async_destroy(env, ctx);
  napi_close_handle_scope(env, scope);
}

static napi_value do_spawn_async(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value args[6], name;
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  spawn_job_t *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, ENOMEM, "spawnAsync");
  if (get_args(env, args, &j->a) != 0) {
    free_args(&j->a);
    free(j);
    return NULL;
  }
  napi_create_reference(env, args[5], 1, &j->callback);
  napi_create_string_utf8(env, "ckpt-spawn", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, spawn_execute, spawn_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_reference(env, j->callback);
    free_args(&j->a);
    free(j);
    napi_throw_error(env, NULL, "ckpt native: could not queue the spawn");
    return NULL;
  }
  return NULL;
}

/* watchExit(pid, callback(code|null, signal|null)) -> handle; the child is reaped here. */
static napi_value watch_exit(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], ext;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t pid = 0;
  napi_get_value_int32(env, argv[0], &pid);
  int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (fd < 0) return throw_errno(env, errno, "pidfd_open");
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  exit_watch_t *w = calloc(1, sizeof *w);
  w->base.env = env;
  w->base.fd = fd;
  w->base.poll.data = w;
  w->pid = pid;
  if (uv_poll_init(loop, &w->base.poll, fd) != 0) {
    close(fd);
    free(w);
    return throw_errno(env, EINVAL, "uv_poll_init");
  }
  napi_create_reference(env, argv[1], 1, &w->base.callback);
  uv_poll_start(&w->base.poll, UV_READABLE, exit_readable);
  CHECK(napi_create_external(env, w, NULL, NULL, &ext));
  return ext;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"inotifyOpen", NULL, inotify_open, NULL, NULL, NULL, napi_default, NULL},
      {"inotifyAdd", NULL, inotify_add, NULL, NULL, NULL, napi_default, NULL},
      {"inotifyRemove", NULL, inotify_remove, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, handle_close, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, handle_ref, NULL, NULL, NULL, napi_default, NULL},
      {"spawnAsync", NULL, do_spawn_async, NULL, NULL, NULL, napi_default, NULL},
      {"watchExit", NULL, watch_exit, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
