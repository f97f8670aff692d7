namespace Diffuse;

/// <summary>
/// The models shipped with Diffuse (the repository's <c>models/</c> folder: the class-conditional Fashion-MNIST model
/// and the feature classifiers of the image metrics). They are copied next to every program that references Diffuse,
/// by its build (<c>AppContext.BaseDirectory/models</c>), so <c>DiffusionModel.Load("fashion-mnist")</c> finds them in
/// any application.
/// </summary>
public static class ShippedModels
{
    /// <summary>The folder of the shipped models next to the program.</summary>
    public static string Root => Path.Combine(AppContext.BaseDirectory, "models");

    /// <summary>Names of the shipped diffusion models (folders of <see cref="Root"/> with a config.json), in order.</summary>
    public static IReadOnlyList<string> Names =>
        Directory.Exists(Root)
            ? Directory.GetDirectories(Root).Where(d => File.Exists(Path.Combine(d, "config.json"))).Select(Path.GetFileName).OfType<string>().Order().ToArray()
            : Array.Empty<string>();

    /// <summary>
    /// The folder to load for <paramref name="model"/>: the path itself when it is an existing folder, else the shipped
    /// model of that name.
    /// </summary>
    /// <param name="model">A model folder written by training, or the name of a shipped model such as <c>fashion-mnist</c>.</param>
    /// <exception cref="DiffuseException">Neither a folder nor a shipped model has that name.</exception>
    public static string Resolve(string model)
    {
        if (string.IsNullOrWhiteSpace(model)) throw new DiffuseException("no model was given: name a model folder written by training or a shipped model.");
        if (Directory.Exists(model)) return model;
        string shipped = Path.Combine(Root, model);
        if (!model.Contains('/') && !model.Contains('\\') && File.Exists(Path.Combine(shipped, "config.json"))) return shipped;
        var names = Names;
        throw new DiffuseException($"model folder '{model}' does not exist. Give the {Param.Of("Trainer.Run(folder)", "checkpoint")} folder of {Param.Of("Trainer.Run")}{(names.Count > 0 ? $" or a shipped model: {string.Join(", ", names)}" : "")}.");
    }
}
