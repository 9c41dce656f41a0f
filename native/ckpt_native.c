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

static napi_value throw_errno(napi_env env, int err, const char *what) {
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
  napi_throw(env, error);
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

/* Tries each PATH entry as execvp does: the first that is not ENOENT/ENOTDIR/EACCES wins. */
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
      int r = posix_spawn(pid, full, fa, attr, argv, envp);
      if (r == 0) return 0;
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
 * spawn(file, argv[], env[], cwd|null, pathVar|null) -> [pid, stdoutFd, stderrFd]
 * Errors (ENOENT, EACCES, a missing cwd...) are thrown with their code.
 */
static napi_value do_spawn(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  char *file = NULL, *cwd = NULL, *path_var = NULL, **argv = NULL, **envp = NULL;
  napi_value result = NULL;
  napi_valuetype t;
  int out[2] = {-1, -1}, err[2] = {-1, -1};

  file = get_string(env, args[0]);
  if (file == NULL) goto done;
  argv = get_vec(env, args[1]);
  if (argv == NULL) goto done;
  envp = get_vec(env, args[2]);
  if (envp == NULL) goto done;
  napi_typeof(env, args[3], &t);
  if (t == napi_string && (cwd = get_string(env, args[3])) == NULL) goto done;
  napi_typeof(env, args[4], &t);
  if (t == napi_string && (path_var = get_string(env, args[4])) == NULL) goto done;

  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    throw_errno(env, errno, "pipe2");
    goto done;
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
  pid_t pid = 0;
  int r = spawn_search(&pid, file, path_var, &fa, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (r != 0) {
    throw_errno(env, r, file);
    goto done;
  }
  napi_value arr, v;
  napi_create_array_with_length(env, 3, &arr);
  napi_create_int32(env, pid, &v);
  napi_set_element(env, arr, 0, v);
  napi_create_int32(env, out[0], &v);
  napi_set_element(env, arr, 1, v);
  napi_create_int32(env, err[0], &v);
  napi_set_element(env, arr, 2, v);
  out[0] = err[0] = -1; /* JavaScript owns the read ends now */
  result = arr;

done:
  for (int i = 0; i < 2; i++) {
    if (out[i] >= 0) close(out[i]);
    if (err[i] >= 0) close(err[i]);
  }
  free(file);
  free(cwd);
  free(path_var);
  free_vec(argv);
  free_vec(envp);
  return result;
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
      {"spawn", NULL, do_spawn, NULL, NULL, NULL, napi_default, NULL},
      {"watchExit", NULL, watch_exit, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
