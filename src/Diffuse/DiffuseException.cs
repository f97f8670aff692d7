namespace Diffuse;

/// <summary>
/// An error caused by the user's input (a missing or malformed file, a wrong shape, an unknown option, a checkpoint of
/// another model). Its message names the problem and what to do; the command-line tool prints it without a stack trace.
/// </summary>
public class DiffuseException : Exception
{
    /// <summary>Creates the error with a message that names the problem and what to do.</summary>
    public DiffuseException(string message) : base(message) { }

    /// <summary>Creates the error with a message and the lower-level cause.</summary>
    public DiffuseException(string message, Exception inner) : base(message, inner) { }
}
