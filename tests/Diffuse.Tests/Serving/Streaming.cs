using System.Text.Json;

namespace Diffuse.Tests.Serving;

/// <summary>A streamed (server-sent events) sample or editing request read event by event.</summary>
internal sealed class Streaming : IDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private Streaming(HttpResponseMessage response, StreamReader reader)
    {
        _response = response;
        _reader = reader;
    }

    public static async Task<Streaming> Start(ServerInstance server, string model, object body, CancellationToken cancellationToken = default, string route = "samples")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/models/{model}/{route}") { Content = ServerInstance.Json(body) };
        var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (!response.IsSuccessStatusCode) Assert.Fail($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}");
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        return new Streaming(response, new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken)));
    }

    /// <summary>The next event (name and JSON data), or null at the end of the stream.</summary>
    public async Task<(string Name, JsonElement Data)?> Next()
    {
        string? name = null, data = null;
        while (await _reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) name = line[7..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal)) data = line[6..];
            else if (line.Length == 0 && name is not null && data is not null)
                return (name, JsonDocument.Parse(data).RootElement.Clone());
        }
        return null;
    }

    /// <summary>Reads events until one called <paramref name="name"/>.</summary>
    public async Task<JsonElement> NextEvent(string name)
    {
        while (await Next() is { } e)
            if (e.Name == name) return e.Data;
        throw new InvalidOperationException($"the stream ended without a '{name}' event");
    }

    public void Dispose()
    {
        _reader.Dispose();
        _response.Dispose();
    }
}
