using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using static TorchSharp.torch;

namespace Diffuse.Cli.Serving;

/// <summary>
/// The editing routes: <c>POST /v1/models/{name}/encode</c>, <c>/decode</c>, <c>/edit</c>, <c>/inpaint</c> and
/// <c>/interpolate</c>, for image models. A body is JSON with the images as base64 files, up to
/// <see cref="ServeOptions.MaxEditBodyBytes"/>; each request is checked before it is queued, then runs alone on the
/// model's worker, and answers with the bytes the matching command writes.
/// </summary>
public sealed partial class DiffuseServer
{
    private void MapEditing()
    {
        _app.MapPost("/v1/models/{name}/encode", (HttpContext context, string name) => Edit<EncodeRequest>(context, name, "encode"));
        _app.MapPost("/v1/models/{name}/decode", (HttpContext context, string name) => Edit<DecodeRequest>(context, name, "decode"));
        _app.MapPost("/v1/models/{name}/edit", (HttpContext context, string name) => Edit<EditRequest>(context, name, "edit"));
        _app.MapPost("/v1/models/{name}/inpaint", (HttpContext context, string name) => Edit<InpaintRequest>(context, name, "inpaint"));
        _app.MapPost("/v1/models/{name}/interpolate", (HttpContext context, string name) => Edit<InterpolateRequest>(context, name, "interpolate"));
    }

    private async Task Edit<TRequest>(HttpContext context, string name, string operation) where TRequest : EditingRequest, new()
    {
        var served = Find(name);
        if (!served.Model.IsImage)
            throw ApiException.Invalid($"'{operation}' needs an image model; {served.Name} was trained on a table (it only samples: POST /v1/models/{served.Name}/samples).");
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = _options.MaxEditBodyBytes;
        var body = await ReadBody<TRequest>(context, operation, new TRequest().Fields);
        EditingWork work;
        using (var scope = NewDisposeScope())
        {
            try
            {
                work = body.Prepare(served, _options).Detach();
            }
            catch (DiffuseException e)
            {
                throw ApiException.From(e);
            }
        }
        if (body.Stream)
        {
            EditingJob? streamed = null;
            await Stream(context, served, progress =>
                {
                    streamed = Enqueue(served, work, context, progress);
                    return streamed.Result;
                },
                new { waiting = served.Scheduler.Waiting, operation },
                p => new { step = p.Step, steps = p.Steps, phase = p.Phase },
                async () =>
                {
                    var result = await Result(streamed!);
                    return new { contentType = result.ContentType, fileName = result.FileName, data = Convert.ToBase64String(result.Bytes) };
                });
            return;
        }
        var encoded = await Result(Enqueue(served, work, context, null));
        var response = context.Response;
        response.ContentType = encoded.ContentType;
        response.Headers.ContentDisposition = $"inline; filename=\"{encoded.FileName}\"";
        await response.Body.WriteAsync(encoded.Bytes, context.RequestAborted);
    }

    /// <summary>Queues the work; when the queue refuses it (full, or stopping), its inputs are freed.</summary>
    private static EditingJob Enqueue(ServedModel served, EditingWork work, HttpContext context, Action<JobProgress>? progress)
    {
        var job = new EditingJob(work, context.RequestAborted, progress);
        try
        {
            served.Scheduler.Enqueue(job);
        }
        catch
        {
            work.Dispose();
            throw;
        }
        return job;
    }

    /// <summary>The job's bytes; a library error raised while it ran is the client's error in the request's words.</summary>
    private static async Task<EncodedResult> Result(EditingJob job)
    {
        try
        {
            return await job.Result;
        }
        catch (DiffuseException e)
        {
            throw ApiException.From(e);
        }
    }

    /// <summary>
    /// Reads a JSON body of type <typeparamref name="T"/> (an empty body is a request with every field left out): the
    /// media type must be JSON, the body within this route's limit, and every field one of <paramref name="fields"/>.
    /// </summary>
    private static async Task<T> ReadBody<T>(HttpContext context, string what, string fields) where T : new()
    {
        var request = context.Request;
        if (request.ContentType is { } type && !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            throw new ApiException(415, "unsupported_media_type", $"send the request as JSON (Content-Type: application/json), not {Truncate(type)}.");
        if (request.ContentLength > BodyLimit(context)) throw TooLarge(context);
        try
        {
            return request.ContentLength == 0 ? new T() : await JsonSerializer.DeserializeAsync<T>(request.Body, SampleRequest.Json, context.RequestAborted) ?? new T();
        }
        catch (JsonException e)
        {
            throw ApiException.Invalid($"the body is not a valid {what} request: {Truncate(e.Message)} Fields: {fields}.");
        }
    }

    /// <summary>The largest body the current route accepts.</summary>
    private static long? BodyLimit(HttpContext context) => context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;

    private static ApiException TooLarge(HttpContext context) =>
        new(413, "body_too_large", $"the request body is over this server's limit of {BodyLimit(context):N0} bytes for {context.Request.Path}.");
}
