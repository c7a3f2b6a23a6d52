/**
 * Herald in the browser: `import { HeraldClient } from "/static/herald.js"` for the events,
 * or just load this module and use <herald-bell token-url="..."></herald-bell>.
 */

import { HeraldBell } from "./herald/bell.js";

export { HeraldClient, HeraldError } from "./herald/client.js";
export { HeraldBell };

if (!customElements.get("herald-bell")) customElements.define("herald-bell", HeraldBell);
