using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Diffuse.Cli.Serving;
using Diffuse.Tests.Cli;
using Diffuse.Tests.Training;

namespace Diffuse.Tests.Serving;

/// <summary>
/// Two tiny models trained once for the serving tests (an 8×8 two-class image model and a 2-D table model) and a server
/// over them on a free loopback port.
/// </summary>
public sealed class ServerFixture : IAsyncLifetime
{
    private readonly TempDir _dir = new();

    public string ImageModel => Path.Combine(_dir.Path, "image");

    public string TableModel => Path.Combine(_dir.Path, "table");

    public string Root => _dir.Path;

    public ServerInstance Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        string data = ImageCommandTests.WriteIdxFolder(Directory.CreateDirectory(Path.Combine(_dir.Path, "data")).FullName);
        var train = Diffuse.Tests.Cli.Cli.Run(ImageCommandTests.TinyTrain(data, ImageModel, steps: 4));
        Assert.True(train.Code == 0, train.Err);
        var table = Diffuse.Tests.Cli.Cli.Run("train", "--data", "moons", "--out", TableModel, "--steps", "20", "--width", "16", "--depth", "1", "--timesteps", "50");
        Assert.True(table.Code == 0, table.Err);
        Server = await ServerInstance.StartAsync(new ServeOptions(Port: 0, MaxImages: 64, MaxRows: 5000, MaxEvaluations: 20_000), ImageModel, TableModel);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        _dir.Dispose();
    }
}

[CollectionDefinition("Serving")]
public sealed class ServingCollection : ICollectionFixture<ServerFixture>;

/// <summary>A running server with its models and a client.</summary>
public sealed class ServerInstance : IAsyncDisposable
{
    private ServerInstance(DiffuseServer server, IReadOnlyList<ServedModel> models, Uri address)
    {
        Server = server;
        Models = models;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(5) };
    }

    public DiffuseServer Server { get; }

    public IReadOnlyList<ServedModel> Models { get; }

    public HttpClient Client { get; }

    public Uri Address => Client.BaseAddress!;

    public static async Task<ServerInstance> StartAsync(ServeOptions options, params string[] models)
    {
        var loaded = ServedModel.LoadAll(models, options);
        var server = new DiffuseServer(options, loaded);
        var address = await server.StartAsync();
        return new ServerInstance(server, loaded, address);
    }

    public ServedModel Model(string name) => Models.Single(m => m.Name == name);

    /// <summary>POSTs a sample request given as an anonymous object (or raw JSON text).</summary>
    public Task<HttpResponseMessage> Sample(string model, object body, CancellationToken cancellationToken = default) =>
        Client.PostAsync($"/v1/models/{model}/samples", Json(body), cancellationToken);

    public static StringContent Json(object body) =>
        new(body as string ?? JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    /// <summary>The bytes of a successful response (the error body in the failure message otherwise).</summary>
    public async Task<byte[]> SampleBytes(string model, object body)
    {
        using var response = await Sample(model, body);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {Encoding.UTF8.GetString(bytes)}");
        return bytes;
    }

    /// <summary>Asserts one JSON error with <paramref name="status"/> whose message holds every fragment.</summary>
    public static async Task AssertError(HttpResponseMessage response, int status, string code, params string[] fragments)
    {
        string text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {text}");
        Assert.StartsWith("application/json", response.Content.Headers.ContentType?.MediaType ?? "");
        using var json = JsonDocument.Parse(text);
        var error = json.RootElement.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        string message = error.GetProperty("message").GetString()!;
        Assert.DoesNotContain("   at ", message);
        foreach (var f in fragments) Assert.Contains(f, message);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.StopAsync();
        await Server.DisposeAsync();
        foreach (var m in Models) m.Dispose();
    }
}
