// Swagger UI for the runtime's own /openapi.json, from the swagger-ui-py wheel: nothing is fetched elsewhere.
"use strict";
(() => {
  function notice(text) {
    const box = document.getElementById("notice");
    box.textContent = text;
    box.hidden = !text;
  }

  function start() {
    notice("");
    window.ui = SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      validatorUrl: null,  // the default badge is fetched from another site
      requestInterceptor: (request) => {
        // The page's token, unless Swagger UI's own Authorize dialog set one.
        const auth = window.nbmeshToken.headers().Authorization;
        if (auth && !request.headers.Authorization) request.headers.Authorization = auth;
        return request;
      },
      responseInterceptor: (response) => {
        if (response.status === 401 && /openapi\.json$/.test(response.url)) {
          notice("This runtime needs a token: enter yours above (it stays in this tab).");
        }
        return response;
      },
    });
  }

  window.nbmeshToken.onChange(start);
  window.addEventListener("DOMContentLoaded", start);
})();
