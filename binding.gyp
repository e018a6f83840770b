{
  # One portable build: SIMD kernels pick AVX-512 / AVX2+FMA / scalar at run time through
  # per-function target attributes (native/src/simd.cc), so no -mavx* flag belongs here.
  "targets": [
    {
      "target_name": "canopy",
      "sources": [
        "native/binding/addon.cc",
        "native/binding/args.cc",
        "native/binding/completions.cc",
        "native/binding/errors.cc",
        "native/binding/index_wrap.cc",
        "native/binding/search_pool_binding.cc",
        "native/src/code_kernels.cc",
        "native/src/codes.cc",
        "native/src/codes_builder.cc",
        "native/src/forest.cc",
        "native/src/graph.cc",
        "native/src/graph_build.cc",
        "native/src/graph_search.cc",
        "native/src/graph_section.cc",
        "native/src/hash64.cc",
        "native/src/index.cc",
        "native/src/mapped_file.cc",
        "native/src/mapping_guard.cc",
        "native/src/node_buffer.cc",
        "native/src/rotation.cc",
        "native/src/search_pool.cc",
        "native/src/sidecar.cc",
        "native/src/simd.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/src"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-ffp-contract=off", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-pthread"]
    }
  ]
}
