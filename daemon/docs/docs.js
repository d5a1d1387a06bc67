// Starts Swagger UI on the document the service makes from its routes. A script
// file of its own rather than inline, so that a Content-Security-Policy of
// script-src 'self' (a proxy's, say) lets it run. SPDX-License-Identifier: MIT
window.onload = function () {
  window.ui = SwaggerUIBundle({
    // Relative to /docs/: right behind a proxy that mounts the service under a prefix.
    url: new URL("../openapi.json", window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
