using Diffuse.Sampling;

namespace Diffuse.Cli.Serving;

/// <summary>A model the server loaded once, under the name clients use, with its own batching worker.</summary>
public sealed class ServedModel : IDisposable
{
    internal ServedModel(string name, string folder, DiffusionModel model, ServeOptions options)
    {
        Name = name;
        Folder = folder;
        Model = model;
        Scheduler = new BatchScheduler(this, options);
        _examples = new Lazy<object?>(() => LoadExamples(ExampleCount));
    }

    /// <summary>The name in URLs: the folder's name (or the shipped model's).</summary>
    public string Name { get; }

    /// <summary>The folder it was loaded from (never shown to clients).</summary>
    public string Folder { get; }

    /// <summary>The model.</summary>
    public DiffusionModel Model { get; }

    internal BatchScheduler Scheduler { get; }

    /// <summary>
    /// Loads every model of <paramref name="models"/> (folders or shipped names) onto <paramref name="device"/> (default
    /// the CPU), naming each by its folder, and starts their workers.
    /// </summary>
    /// <exception cref="DiffuseException">A model cannot be loaded, or two have the same name.</exception>
    public static IReadOnlyList<ServedModel> LoadAll(IReadOnlyList<string> models, ServeOptions options, TorchSharp.torch.Device? device = null)
    {
        var loaded = new List<ServedModel>();
        try
        {
            foreach (string given in models)
            {
                string folder = ModelFolders.Resolve(given);
                string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
                if (loaded.Any(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase)))
                    throw new DiffuseException($"two models are named '{name}' (the folder's name names a model in URLs); serve folders with different names.");
                var model = DiffusionModel.Load(folder, device);
                loaded.Add(new ServedModel(name, folder, model, options));
            }
            return loaded;
        }
        catch
        {
            foreach (var m in loaded) m.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Test images of the data set the model was trained on, for the playground's forward process: only a named data set
    /// (fashion-mnist, mnist) whose converted test split is already in this machine's cache (nothing is downloaded, and
    /// no path comes from a request); null otherwise. The first images, as PNGs with their classes, read once.
    /// </summary>
    public object? Examples => _examples.Value;

    private readonly Lazy<object?> _examples;

    /// <summary>How many test images <see cref="Examples"/> holds.</summary>
    private const int ExampleCount = 16;

    private object? LoadExamples(int count)
    {
        if (!Model.IsImage) return null;
        string name = ImageSources.FromTrainingSource(Model.Config.Data.Source);
        if (!Diffuse.Data.Images.NpmDatasets.IsKnown(name)) return null;
        string file = Path.Combine(Diffuse.Data.Images.NpmDatasets.DefaultCacheRoot, name, Diffuse.Data.Images.NpmDatasets.TestFile);
        if (!File.Exists(file)) return null;
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var data = Diffuse.Data.Images.ImageDatasetFile.Load(file);
        if (data.Channels != Model.ExampleShape[0] || data.Height != Model.ExampleShape[1] || data.Width != Model.ExampleShape[2]) return null;
        int n = Math.Min(count, data.Count);
        return new
        {
            source = $"{name} (test)",
            images = Enumerable.Range(0, n).Select(i => new
            {
                name = $"{name} test image {i}" + (data.Labels is { } labels && labels[i] < data.ClassNames.Length ? $" ({data.ClassNames[labels[i]]})" : ""),
                png = Convert.ToBase64String(Pictures.Png(data.Images[i])),
            }).ToArray(),
        };
    }

    /// <summary>What <c>GET /v1/models</c> says about the model.</summary>
    public object Info()
    {
        var config = Model.Config;
        var chosen = Model.DefaultSampler;
        var record = SamplerRecord.Load(Folder);
        return new
        {
            name = Name,
            kind = Model.IsImage ? "image" : "table",
            shape = Model.ExampleShape,
            columns = Model.IsImage ? null : config.Data.Columns,
            classes = Model.ClassNames,
            source = config.Data.Source,
            formulation = config.Formulation.Kind.ToString().ToLowerInvariant(),
            prediction = config.Prediction.ToString().ToLowerInvariant(),
            schedule = config.Schedule.Kind.ToString().ToLowerInvariant(),
            timesteps = Model.Schedule.Timesteps,
            trainingStep = config.Step,
            defaultSampler = new
            {
                description = chosen.Description,
                sampler = SamplerNames.Name(chosen.Options.Kind),
                steps = chosen.Options.StepCount(Model.Schedule),
                nfe = chosen.Options.FunctionEvaluations(Model.Schedule),
            },
            recordedBest = record?.Best.Select(s => new { budget = s.Budget, sampler = s.Sampler, spacing = s.Spacing, steps = s.Steps, nfe = s.Nfe, score = s.Score, metric = record.Metric }),
            samplers = SamplerNames.All,
            formats = Model.IsImage ? SampleRequest.ImageFormats : SampleRequest.TableFormats,
            defaultGuidance = Model.ClassCount > 0 ? SamplingDefaults.Guidance : (double?)null,
        };
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Scheduler.Dispose();
        Model.Dispose();
    }
}
