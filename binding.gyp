{
  "targets": [
    {
      "target_name": "ckpt_native",
      "sources": ["native/ckpt_native.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [["OS!='linux'", {"type": "none", "sources!": ["native/ckpt_native.c"]}]]
    }
  ]
}
