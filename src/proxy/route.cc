#include "proxy/route.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace pgb::proxy {

namespace {

// "P/B" or "P/@" as a route; nullopt if either part is empty or P is '@'.
std::optional<Route> RouteOf(std::string_view project, std::string_view branch) {
  if (project.empty() || branch.empty() || project == "@") return std::nullopt;
  if (project.find('/') != std::string_view::npos || branch.find('/') != std::string_view::npos) {
    return std::nullopt;
  }
  Route r;
  r.project = std::string(project);
  if (branch != "@") r.branch = std::string(branch);
  return r;
}

// One word of an options parameter: its text as sent (escapes kept) and as meant.
struct Word {
  std::string raw;
  std::string value;
};

// Splits as the server's pg_split_opts does: spaces separate, '\' takes the next byte as is.
std::vector<Word> SplitOptions(std::string_view options) {
  std::vector<Word> words;
  size_t i = 0;
  while (i < options.size()) {
    while (i < options.size() && std::isspace(static_cast<unsigned char>(options[i]))) ++i;
    if (i >= options.size()) break;
    Word w;
    while (i < options.size() && !std::isspace(static_cast<unsigned char>(options[i]))) {
      if (options[i] == '\\' && i + 1 < options.size()) {
        w.raw += options.substr(i, 2);
        w.value += options[i + 1];
        i += 2;
      } else {
        w.raw += options[i];
        w.value += options[i];
        ++i;
      }
    }
    words.push_back(std::move(w));
  }
  return words;
}

Result<Route> RouteValue(std::string_view value) {
  size_t slash = value.find('/');
  std::optional<Route> r;
  if (slash != std::string_view::npos && value.find('/', slash + 1) == std::string_view::npos) {
    r = RouteOf(value.substr(0, slash), value.substr(slash + 1));
  }
  if (!r) {
    return Status::InvalidArgument(fmt::format("route {}: expected PROJECT/BRANCH or PROJECT/@",
                                               std::string(value.substr(0, 200))));
  }
  return *r;
}

}  // namespace

Result<DatabaseRoute> ParseDatabaseRoute(std::string_view database) {
  DatabaseRoute out;
  size_t first = database.find('/');
  if (first == std::string_view::npos) {
    out.database = std::string(database);
    return out;
  }
  size_t second = database.find('/', first + 1);
  std::string_view branch = database.substr(
      first + 1, second == std::string_view::npos ? std::string_view::npos : second - first - 1);
  out.route = RouteOf(database.substr(0, first), branch);
  out.database =
      second == std::string_view::npos ? "postgres" : std::string(database.substr(second + 1));
  if (!out.route || out.database.empty()) {
    return Status::InvalidArgument(
        fmt::format("route {}: expected PROJECT/BRANCH[/DATABASE] or PROJECT/@[/DATABASE]",
                    std::string(database.substr(0, 200))));
  }
  return out;
}

Result<OptionsRoute> ParseOptionsRoute(std::string_view options) {
  OptionsRoute out;
  std::vector<Word> words = SplitOptions(options);
  std::vector<std::string> kept;
  auto take = [&](std::string_view value) -> Status {
    if (out.route) {
      return Status::InvalidArgument("options: the route is given twice");
    }
    PGB_ASSIGN_OR_RETURN(out.route, RouteValue(value));
    out.changed = true;
    return Status::OK();
  };
  constexpr std::string_view kGuc = "pgbranch.branch=";
  for (size_t i = 0; i < words.size(); ++i) {
    std::string_view v = words[i].value;
    if (v == "-c" && i + 1 < words.size() && words[i + 1].value.starts_with(kGuc)) {
      PGB_RETURN_IF_ERROR(take(std::string_view(words[i + 1].value).substr(kGuc.size())));
      ++i;
    } else if (v.starts_with("-c") && v.substr(2).starts_with(kGuc)) {
      PGB_RETURN_IF_ERROR(take(v.substr(2 + kGuc.size())));
    } else if (v.starts_with("--") && v.substr(2).starts_with(kGuc)) {
      PGB_RETURN_IF_ERROR(take(v.substr(2 + kGuc.size())));
    } else if (v.starts_with("branch=")) {
      PGB_RETURN_IF_ERROR(take(v.substr(7)));
    } else {
      kept.push_back(words[i].raw);
    }
  }
  if (out.changed) {
    out.rest = fmt::format("{}", fmt::join(kept, " "));
  } else {
    out.rest = std::string(options);
  }
  return out;
}

std::optional<Route> ParseSniRoute(std::string_view server_name, std::string_view domain) {
  std::string name(server_name), dom(domain);
  auto lower = [](std::string& s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  };
  lower(name);
  lower(dom);
  if (dom.empty() || name.size() <= dom.size() + 1 || !name.ends_with("." + dom)) {
    return std::nullopt;
  }
  std::string_view labels(name.data(), name.size() - dom.size() - 1);
  size_t dot = labels.find('.');
  if (dot == std::string_view::npos) return RouteOf(labels, "@");
  if (labels.find('.', dot + 1) != std::string_view::npos) return std::nullopt;
  return RouteOf(labels.substr(dot + 1), labels.substr(0, dot));
}

Result<RoutedStartup> RouteStartup(std::string_view database, std::string_view options,
                                   std::string_view sni, std::string_view domain) {
  RoutedStartup out;
  PGB_ASSIGN_OR_RETURN(DatabaseRoute db, ParseDatabaseRoute(database));
  PGB_ASSIGN_OR_RETURN(OptionsRoute opt, ParseOptionsRoute(options));
  std::optional<Route> by_sni = sni.empty() ? std::nullopt : ParseSniRoute(sni, domain);
  out.database = db.database;
  out.options = opt.rest;
  out.options_changed = opt.changed;
  struct Named {
    const char* how;
    std::optional<Route> route;
  };
  const char* first_how = "";
  for (const Named& n : {Named{"the database name", db.route}, Named{"options", opt.route},
                         Named{"the TLS server name", by_sni}}) {
    if (!n.route) continue;
    if (out.route && !(*out.route == *n.route)) {
      return Status::InvalidArgument(fmt::format("route: {} names {} but {} names {}", first_how,
                                                 out.route->ToString(), n.how,
                                                 n.route->ToString()));
    }
    if (!out.route) first_how = n.how;
    out.route = n.route;
  }
  return out;
}

}  // namespace pgb::proxy
