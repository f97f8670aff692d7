namespace Diffuse.Cli;

/// <summary>
/// Finds a model given to <c>--model</c>: a folder written by <c>diffuse train</c>, or the name of a model shipped with
/// Diffuse (<see cref="ShippedModels"/>).
/// </summary>
public static class ModelFolders
{
    /// <summary>The folder of the shipped models next to the program.</summary>
    public static string ShippedRoot => ShippedModels.Root;

    /// <summary>The folder to load for <paramref name="model"/>: the path itself when it exists, else a shipped model of that name.</summary>
    public static string Resolve(string model) => ShippedModels.Resolve(model);
}
