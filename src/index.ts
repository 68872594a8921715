// opencode calls every export of this module as a plugin and refuses any export that is not a function,
// so this file exports the plugin function and nothing else. Library pieces live in ./lib.ts.
import { OpencodeCiAuth } from "./plugin.js";

export { OpencodeCiAuth };
export default OpencodeCiAuth;
