// gitlab-ci-local 4.75 is bundled for Node 22 and calls Set.prototype.union (and friends) at load time; Node 20,
// which this project supports, lacks them. Loaded with `node --import` only when they are missing.
const methods = {
  union(other) {
    const out = new Set(this);
    for (const value of other.keys()) out.add(value);
    return out;
  },
  intersection(other) {
    const out = new Set();
    for (const value of this) if (other.has(value)) out.add(value);
    return out;
  },
  difference(other) {
    const out = new Set();
    for (const value of this) if (!other.has(value)) out.add(value);
    return out;
  },
  symmetricDifference(other) {
    const out = new Set(this);
    for (const value of other.keys()) {
      if (this.has(value)) out.delete(value);
      else out.add(value);
    }
    return out;
  },
  isSubsetOf(other) {
    for (const value of this) if (!other.has(value)) return false;
    return true;
  },
  isSupersetOf(other) {
    for (const value of other.keys()) if (!this.has(value)) return false;
    return true;
  },
  isDisjointFrom(other) {
    for (const value of this) if (other.has(value)) return false;
    return true;
  },
};
for (const [name, fn] of Object.entries(methods)) {
  if (typeof Set.prototype[name] !== "function") {
    Object.defineProperty(Set.prototype, name, { value: fn, writable: true, configurable: true });
  }
}
