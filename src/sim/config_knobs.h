#pragma once
// The accelerator models' parameters as JSON: each model lists its knobs (key, field, range) once,
// and reading refuses an unknown key or a value out of range, naming it.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "util/error.h"

namespace sieve::sim {

template <class Config>
struct Knob {
  const char* key;
  double Config::*field;
  double low, high;
};

template <class Config>
Config config_from_json(const nlohmann::json& j, std::span<const Knob<Config>> knobs, const std::string& what,
                        const std::string& source) {
  if (!j.is_object()) throw Error(source + ": a " + what + " config must be a JSON object");
  Config c;
  for (auto item = j.begin(); item != j.end(); ++item) {
    const std::string& key = item.key();
    const nlohmann::json& value = item.value();
    const auto knob = std::find_if(knobs.begin(), knobs.end(), [&](const Knob<Config>& k) { return key == k.key; });
    if (knob == knobs.end()) throw Error(source + ": unknown " + what + " setting \"" + key + "\"");
    if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < knob->low || value.get<double>() > knob->high)
      throw Error(source + ": \"" + key + "\" must be a number from " + std::to_string(knob->low) + " to " + std::to_string(knob->high));
    c.*(knob->field) = value.get<double>();
  }
  return c;
}

template <class Config>
nlohmann::json config_to_json(const Config& config, std::span<const Knob<Config>> knobs) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& k : knobs) j[k.key] = config.*(k.field);
  return j;
}

}  // namespace sieve::sim
