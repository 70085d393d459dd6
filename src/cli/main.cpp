// sieve: the command-line front end. Each subcommand lives in cli/commands/ and registers itself;
// this file only parses and turns errors into a message and a non-zero exit code.
#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <exception>

#include "cli/commands/common.h"
#include "util/error.h"

int main(int argc, char** argv) {
  CLI::App app{"Sieve: a transformer inference engine that skips what does not matter"};
  app.require_subcommand(1);
  sieve::cli::register_embed(app);
  sieve::cli::register_classify(app);
  sieve::cli::register_qa(app);
  sieve::cli::register_tokenize(app);
  sieve::cli::register_bench(app);
  sieve::cli::register_eval(app);
  sieve::cli::register_explain(app);
  sieve::cli::register_calibrate(app);
  sieve::cli::register_tune(app);
  sieve::cli::register_generate(app);
  sieve::cli::register_perplexity(app);
  sieve::cli::register_sim(app);
  sieve::cli::register_bench_decoder(app);
  sieve::cli::register_serve(app);
  // CLI11 only says "A subcommand is required" for a misspelt command; name it instead.
  bool known_command = argc < 2 || argv[1][0] == '-';
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    known_command = known_command || sub->check_name(argv[1]);
  if (!known_command) {
    std::fprintf(stderr, "sieve: error: unknown command '%s' (run 'sieve --help' for the list)\n", argv[1]);
    return 2;
  }
  // Past a file-size limit, a write should fail with EFBIG and be reported, not kill the process
  // halfway through an output file.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    app.parse(argc, argv);
    // Output goes to stdout through both iostreams and stdio; a full disk or a closed pipe shows
    // only here, and must not end with exit code 0.
    std::cout.flush();
    if (!std::cout || std::fflush(stdout) != 0 || std::ferror(stdout)) {
      std::fprintf(stderr, "sieve: error: writing the output failed: %s\n", std::strerror(errno));
      return 1;
    }
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const sieve::Error& e) {
    std::fprintf(stderr, "sieve: error: %s\n", e.what());
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {  // a path the user gave: a link loop, no permission
    std::fprintf(stderr, "sieve: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "sieve: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sieve: internal error: %s\n", e.what());
    return 3;
  }
  return 0;
}
