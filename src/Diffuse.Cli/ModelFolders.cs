namespace Diffuse.Cli;

/// <summary>
/// Finds a model given to <c>--model</c>: a folder written by <c>diffuse train</c>, or the name of a model shipped with
/// Diffuse (the repository's <c>models/</c> folder, copied next to the program when it is built).
/// </summary>
public static class ModelFolders
{
    /// <summary>The folder of the shipped models next to the program.</summary>
    public static string ShippedRoot => Path.Combine(AppContext.BaseDirectory, "models");

    /// <summary>Names of the shipped diffusion models.</summary>
    public static IReadOnlyList<string> Shipped =>
        Directory.Exists(ShippedRoot)
            ? Directory.GetDirectories(ShippedRoot).Where(d => File.Exists(Path.Combine(d, "config.json"))).Select(Path.GetFileName).OfType<string>().Order().ToArray()
            : Array.Empty<string>();

    /// <summary>The folder to load for <paramref name="model"/>: the path itself when it exists, else a shipped model of that name.</summary>
    public static string Resolve(string model)
    {
        if (Directory.Exists(model)) return model;
        string shipped = Path.Combine(ShippedRoot, model);
        if (!model.Contains('/') && !model.Contains('\\') && File.Exists(Path.Combine(shipped, "config.json"))) return shipped;
        var names = Shipped;
        throw new DiffuseException($"model folder '{model}' does not exist. Give the --out folder of 'diffuse train'{(names.Count > 0 ? $" or a shipped model: {string.Join(", ", names)}" : "")}.");
    }
}
