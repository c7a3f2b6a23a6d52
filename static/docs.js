// The API reference at /docs: Swagger UI, vendored under static/vendor/swagger-ui, renders
// this node's own /openapi.json. Nothing is fetched from another origin.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // Generated clients name their functions after operationIds: show them.
  displayOperationId: true,
  // Swagger UI would otherwise send the document to validator.swagger.io for a badge.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
